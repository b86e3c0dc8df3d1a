package streamcore

import (
	"net/netip"

	"github.com/nodemesh/nodemesh/pkg/proxy/accesslog"
	"github.com/nodemesh/nodemesh/pkg/proxy/edges"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// Edges is what a stream data plane's edge metrics (issue 9) and access
// log share: who the clients are, the access log, and which edge series
// exist. The data plane keeps its own metric vectors beside it.
type Edges struct {
	// Resolver names clients by source address.
	Resolver *edges.Resolver
	// Log receives the access log entries; nil: no access log.
	Log *accesslog.Logger
	// On is true when edge metrics are kept; Series is then the data
	// plane's series, set by it once its vectors are registered.
	On     bool
	Series *edges.Series
}

// NewEdges returns the Edges of a data plane with edge metrics on or off
// and the access log log; nil when neither is wanted, which a data plane
// keeps as its nil edge state. sources is shared among the data planes;
// nil means one of this data plane's own.
func NewEdges(on bool, log *accesslog.Logger, sources *edges.Resolver) *Edges {
	if !on && log == nil {
		return nil
	}
	e := &Edges{Resolver: sources, Log: log, On: on}
	if e.Resolver == nil {
		e.Resolver = new(edges.Resolver)
	}
	return e
}

// Applied deletes the series that a table with the stream routes streams
// (t.TCP or t.UDP) no longer has a use for. It does nothing on a nil Edges
// or with edge metrics off.
func (e *Edges) Applied(t *table.Table, streams []table.StreamRoute) {
	if e == nil || !e.On {
		return
	}
	e.Series.Applied(e.Resolver.For(t), edges.StreamDests(streams))
}

// EdgeRoute is the edge state of one stream route of one table. T is the
// data plane's children of one (source, service, backend).
type EdgeRoute[T any] struct {
	*Edges
	Service table.ServiceRef
	// Sources are the clients known to the route's table.
	Sources   *edges.Sources
	backendOf edges.Backends
	backends  map[string]*edges.Cache[T] // by backend service; nil with edge metrics off
}

// NewEdgeRoute returns the edge state of sr, a route of t. children makes
// the children of one edge from its label values: the source's
// (edges.SourceLabels), then the service's namespace and name and the
// backend's name; the data plane appends its own last label. Each edge is
// made once per source and its series touched then.
func NewEdgeRoute[T any](e *Edges, t *table.Table, sr *table.StreamRoute, children func(lv []string) *T) *EdgeRoute[T] {
	svc := sr.Service
	r := &EdgeRoute[T]{Edges: e, Service: svc, Sources: e.Resolver.For(t), backendOf: edges.StreamBackends(sr)}
	if !e.On {
		return r
	}
	r.backends = map[string]*edges.Cache[T]{}
	for _, b := range sr.Backends {
		name := b.Service.Name
		if r.backends[name] == nil {
			r.backends[name] = &edges.Cache[T]{New: func(s *edges.Source) *T {
				e.Series.Touch(edges.Dest{Service: svc, Backend: name})
				return children([]string{s.Namespace, s.Workload, s.ServiceAccount, svc.Namespace, svc.Name, name})
			}}
		}
	}
	return r
}

// Backend returns the name of the backend service endpoint belongs to,
// and with edge metrics on the children of the edge from src to it (nil
// otherwise, or when endpoint is of no backend of the route).
func (r *EdgeRoute[T]) Backend(src *edges.Source, endpoint netip.AddrPort) (string, *T) {
	name := r.backendOf.Of(endpoint)
	if c := r.backends[name]; c != nil {
		return name, c.Get(r.Sources, src)
	}
	return name, nil
}
