package udpproxy

import (
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/pkg/proxy/accesslog"
	"github.com/nodemesh/nodemesh/pkg/proxy/edges"
	"github.com/nodemesh/nodemesh/pkg/proxy/promreg"
	"github.com/nodemesh/nodemesh/pkg/proxy/streamcore"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// edgeMetrics are the UDP data plane's edge metrics (issue 9): datagrams
// forwarded by source workload, destination service and the backend the
// client's session is bound to. It also feeds the access log, one entry
// per session when it ends. A nil *edgeMetrics (neither asked for) costs
// one nil check per new session and nothing per datagram.
type edgeMetrics struct {
	*streamcore.Edges
	datagrams *prometheus.CounterVec
}

func newEdgeMetrics(opts *Options) *edgeMetrics {
	e := streamcore.NewEdges(opts.EdgeMetrics, opts.AccessLog, opts.Sources)
	if e == nil {
		return nil
	}
	m := &edgeMetrics{Edges: e}
	if !m.On {
		return m
	}
	m.datagrams = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nodemesh_proxy_edge_udp_datagrams_total",
		Help: "UDP datagrams forwarded, by source workload, destination service, backend and direction (to_backend, to_client).",
	}, append(append([]string{}, edges.SourceLabels...), edges.LabelNamespace, edges.LabelService, edges.LabelBackend, "direction"))
	m.datagrams = promreg.Register(opts.Registerer, m.datagrams)
	m.Series = edges.NewSeries(m.datagrams.MetricVec)
	return m
}

// applied deletes the series t no longer has a use for.
func (m *edgeMetrics) applied(t *table.Table) {
	if m != nil {
		m.Applied(t, t.UDP)
	}
}

// edgeRoute is the edge state of one route of one table.
type edgeRoute struct {
	*streamcore.EdgeRoute[udpEdge]
}

// udpEdge is the children of one (source, service, backend).
type udpEdge struct{ toBackend, toClient prometheus.Counter }

func (m *edgeMetrics) forRoute(t *table.Table, sr *table.StreamRoute) *edgeRoute {
	if m == nil {
		return nil
	}
	return &edgeRoute{streamcore.NewEdgeRoute(m.Edges, t, sr, func(lv []string) *udpEdge {
		return &udpEdge{
			toBackend: m.datagrams.WithLabelValues(append(lv, "to_backend")...),
			toClient:  m.datagrams.WithLabelValues(append(lv, "to_client")...),
		}
	})}
}

// edgeSession follows one session for edge metrics and the access log.
type edgeSession struct {
	r        *edgeRoute
	client   netip.AddrPort
	src      *edges.Source
	backend  string
	endpoint netip.AddrPort
	start    time.Time
	log      bool
	up, down edges.Tally
}

// open starts following the session of client bound to endpoint, and
// returns it with rm's datagram counters replaced by ones that also count
// the edge. Both are unchanged (and the session nil) when r is nil.
func (r *edgeRoute) open(client, endpoint netip.AddrPort, rm routeMetrics) (*edgeSession, routeMetrics) {
	if r == nil {
		return nil, rm
	}
	es := &edgeSession{r: r, client: client, src: r.Sources.Lookup(client.Addr()), endpoint: endpoint, start: time.Now(), log: r.Log.Allow()}
	name, e := r.Backend(es.src, endpoint)
	es.backend = name
	es.up.Service, es.down.Service = rm.toBackend, rm.toClient
	if e != nil {
		es.up.Edge, es.down.Edge = e.toBackend, e.toClient
	}
	rm.toBackend, rm.toClient = &es.up, &es.down
	return es, rm
}

// close writes the session's access log entry, if sampled.
func (es *edgeSession) close() {
	if es == nil || !es.log {
		return
	}
	e := accesslog.Entry{
		Time: es.start, Protocol: "udp",
		SourceIP: es.client.String(), SourceNamespace: es.src.Namespace, SourceWorkload: es.src.Workload, SourceServiceAccount: es.src.ServiceAccount,
		Namespace: es.r.Service.Namespace, Service: es.r.Service.Name, Backend: es.backend, Endpoint: es.endpoint.String(),
		Duration: time.Since(es.start), DatagramsReceived: es.up.N(), DatagramsSent: es.down.N(),
	}
	es.r.Log.Log(&e)
}
