package edges

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// Dest is a destination service and the backend chosen for it.
type Dest struct {
	Service table.ServiceRef
	Backend string
}

// Series remembers which destinations have series in a data plane's edge
// vectors, so that when a table drops a service, a backend or a source
// workload, its series are deleted: cardinality follows the cluster, not
// its history.
type Series struct {
	vecs    []*prometheus.MetricVec
	mu      sync.Mutex
	dests   map[Dest]bool
	sources *Sources
}

// NewSeries tracks the series of vecs, whose labels include the source
// labels, LabelNamespace, LabelService and LabelBackend.
func NewSeries(vecs ...*prometheus.MetricVec) *Series {
	return &Series{vecs: vecs, dests: map[Dest]bool{}}
}

// Touch records that d has series. Call it when building children, not
// per request.
func (s *Series) Touch(d Dest) {
	s.mu.Lock()
	s.dests[d] = true
	s.mu.Unlock()
}

// Applied deletes the series of destinations not in keep and of sources
// that next no longer has, and remembers next.
func (s *Series) Applied(next *Sources, keep map[Dest]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for d := range s.dests {
		if keep[d] {
			continue
		}
		delete(s.dests, d)
		s.delete(prometheus.Labels{LabelNamespace: d.Service.Namespace, LabelService: d.Service.Name, LabelBackend: d.Backend})
	}
	for _, src := range Gone(s.sources, next) {
		s.delete(prometheus.Labels{LabelSourceNamespace: src.Namespace, LabelSourceWorkload: src.Workload, LabelSourceServiceAccount: src.ServiceAccount})
	}
	s.sources = next
}

func (s *Series) delete(l prometheus.Labels) {
	for _, v := range s.vecs {
		v.DeletePartialMatch(l)
	}
}

// StreamDests lists the destinations of stream routes: each route's
// service with each of its backends, and with NoBackend.
func StreamDests(routes []table.StreamRoute) map[Dest]bool {
	keep := map[Dest]bool{}
	for i := range routes {
		svc := routes[i].Service
		keep[Dest{svc, NoBackend}] = true
		for _, b := range routes[i].Backends {
			keep[Dest{svc, b.Service.Name}] = true
		}
	}
	return keep
}
