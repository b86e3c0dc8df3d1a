package tcpproxy

import (
	"net"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/pkg/proxy/accesslog"
	"github.com/nodemesh/nodemesh/pkg/proxy/edges"
	"github.com/nodemesh/nodemesh/pkg/proxy/promreg"
	"github.com/nodemesh/nodemesh/pkg/proxy/streamcore"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// edgeMetrics are the TCP data plane's edge metrics (issue 9): connections
// and bytes by source workload, destination service and the backend the
// connection went to. It also feeds the access log, one entry per
// connection. A nil *edgeMetrics (neither asked for) costs one nil check
// per connection.
type edgeMetrics struct {
	*streamcore.Edges
	connections *prometheus.CounterVec
	bytes       *prometheus.CounterVec
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
	labels := append(append([]string{}, edges.SourceLabels...), edges.LabelNamespace, edges.LabelService, edges.LabelBackend)
	m.connections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nodemesh_proxy_edge_tcp_connections_total",
		Help: "TCP connections accepted, by source workload, destination service, backend (\"none\" when no backend was reached) and result (ok, denied, limited, no_endpoints, connect_error).",
	}, append(append([]string{}, labels...), "result"))
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nodemesh_proxy_edge_tcp_bytes_total",
		Help: "Bytes copied by the TCP proxy, by source workload, destination service, backend and direction (to_backend, to_client).",
	}, append(append([]string{}, labels...), "direction"))
	m.connections = promreg.Register(opts.Registerer, m.connections)
	m.bytes = promreg.Register(opts.Registerer, m.bytes)
	m.Series = edges.NewSeries(m.connections.MetricVec, m.bytes.MetricVec)
	return m
}

// applied deletes the series t no longer has a use for.
func (m *edgeMetrics) applied(t *table.Table) {
	if m != nil {
		m.Applied(t, t.TCP)
	}
}

// edgeRoute is the edge state of one route of one table.
type edgeRoute struct {
	*streamcore.EdgeRoute[tcpEdge]
	m *edgeMetrics
}

// tcpEdge is the children of one (source, service, backend).
type tcpEdge struct {
	ok, toBackend, toClient prometheus.Counter
}

func (m *edgeMetrics) forRoute(t *table.Table, sr *table.StreamRoute) *edgeRoute {
	if m == nil {
		return nil
	}
	return &edgeRoute{m: m, EdgeRoute: streamcore.NewEdgeRoute(m.Edges, t, sr, func(lv []string) *tcpEdge {
		return &tcpEdge{
			ok:        m.connections.WithLabelValues(append(lv, resultOK)...),
			toBackend: m.bytes.WithLabelValues(append(lv, directionToBackend)...),
			toClient:  m.bytes.WithLabelValues(append(lv, directionToClient)...),
		}
	})}
}

// edgeConn follows one client connection for edge metrics and the access
// log.
type edgeConn struct {
	r        *edgeRoute
	addr     netip.Addr
	src      *edges.Source
	start    time.Time
	log      bool
	result   string
	backend  string
	endpoint netip.AddrPort
	up, down edges.Tally
}

// open starts following a connection from addr; nil when r is.
func (r *edgeRoute) open(addr netip.Addr) *edgeConn {
	if r == nil {
		return nil
	}
	return &edgeConn{r: r, addr: addr, src: r.Sources.Lookup(addr), start: time.Now(), log: r.Log.Allow(), backend: edges.NoBackend}
}

// fail records a connection that reached no backend.
func (ec *edgeConn) fail(result string) {
	if ec == nil {
		return
	}
	ec.result = result
	r := ec.r
	if r.On {
		r.Series.Touch(edges.Dest{Service: r.Service, Backend: edges.NoBackend})
		r.m.connections.WithLabelValues(ec.src.Namespace, ec.src.Workload, ec.src.ServiceAccount, r.Service.Namespace, r.Service.Name, edges.NoBackend, result).Inc()
	}
}

// connected records the connection's backend and returns rm with byte
// counters that also count the edge (and the connection, for the log).
func (ec *edgeConn) connected(backend *net.TCPConn, rm routeMetrics) routeMetrics {
	if ec == nil {
		return rm
	}
	ec.result = resultOK
	if ta, ok := backend.RemoteAddr().(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		ec.endpoint = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	name, e := ec.r.Backend(ec.src, ec.endpoint)
	ec.backend = name
	ec.up.Service, ec.down.Service = rm.toBackend, rm.toClient
	if e != nil {
		e.ok.Inc()
		ec.up.Edge, ec.down.Edge = e.toBackend, e.toClient
	}
	rm.toBackend, rm.toClient = &ec.up, &ec.down
	return rm
}

// close writes the access log entry of the connection, if sampled.
func (ec *edgeConn) close() {
	if ec == nil || !ec.log {
		return
	}
	e := accesslog.Entry{
		Time: ec.start, Protocol: "tcp",
		SourceIP: ec.addr.String(), SourceNamespace: ec.src.Namespace, SourceWorkload: ec.src.Workload, SourceServiceAccount: ec.src.ServiceAccount,
		Namespace: ec.r.Service.Namespace, Service: ec.r.Service.Name, Backend: ec.backend,
		Result: ec.result, Duration: time.Since(ec.start),
		BytesReceived: ec.up.N(), BytesSent: ec.down.N(),
	}
	if ec.endpoint.IsValid() {
		e.Endpoint = ec.endpoint.String()
	}
	ec.r.Log.Log(&e)
}
