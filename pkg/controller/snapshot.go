package controller

import (
	"errors"
	"slices"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodemesh/nodemesh/pkg/snapshot"
)

// snapshot reads every lister into a Snapshot: the only place the
// controller reads its caches. User objects of ignored namespaces are dropped
// (a cluster-wide informer sees them).
//
// The lists of the big kinds (Services, EndpointSlices, Pods, Nodes,
// shadows) are kept from one snapshot to the next and listed again only
// after an event of their kind: a weight edit then lists none of them, and
// the topology builder, given the very same lists, reuses what it derived
// from them. Snapshots therefore share these lists, which nothing modifies.
// snapshot is called by one goroutine at a time (the rebuild worker). The
// SMI kinds come from the SMI informers current when it starts, and the
// snapshot's SMI status is theirs.
func (s *sources) snapshot() (*snapshot.Snapshot, error) {
	var errs []error
	smi := s.smi.Load()
	snap := &snapshot.Snapshot{SMI: smi.result.Status}
	snap.Services = s.last.services.get(s.gen("Service"), &errs, func(errs *[]error) []*corev1.Service {
		return gather(s, s.services, errs)
	})
	snap.EndpointSlices = s.last.slices.get(s.gen("EndpointSlice"), &errs, func(errs *[]error) []*discoveryv1.EndpointSlice {
		return gather(s, s.slices, errs)
	})
	snap.Pods = s.last.pods.get(s.gen("Pod"), &errs, func(errs *[]error) []*snapshot.Pod {
		pods := gatherBy(s, s.pods, func(p *snapshot.Pod) string { return p.Namespace }, errs)
		// Pods without an IP can neither be an endpoint nor a source. The
		// list is new, so it is filtered in place.
		return slices.DeleteFunc(pods, func(p *snapshot.Pod) bool { return len(p.IPs) == 0 })
	})
	snap.TrafficSplits = gather(s, smi.splits, &errs)
	snap.HTTPRouteGroups = gather(s, smi.httpGroups, &errs)
	snap.TCPRoutes = gather(s, smi.tcpRoutes, &errs)
	snap.UDPRoutes = gather(s, smi.udpRoutes, &errs)
	for _, tt := range gather(s, smi.targets, &errs) {
		snap.TrafficTargets = append(snap.TrafficTargets, tt.TrafficTarget)
		if tt.port != 0 {
			if snap.TrafficTargetPorts == nil {
				snap.TrafficTargetPorts = map[types.NamespacedName]int32{}
			}
			snap.TrafficTargetPorts[types.NamespacedName{Namespace: tt.Namespace, Name: tt.Name}] = tt.port
		}
	}
	snap.Nodes = s.last.nodes.get(s.gen("Node"), &errs, func(errs *[]error) []*corev1.Node {
		nodes, err := s.nodes()
		*errs = append(*errs, err)
		return nodes
	})
	snap.ShadowServices = s.last.shadows.get(s.gen(kindShadow), &errs, func(errs *[]error) []*corev1.Service {
		shadows, err := s.shadows()
		*errs = append(*errs, err)
		return shadows
	})
	return snap, errors.Join(errs...)
}

// shadowsGen is the shadow informer's event generation that the last
// snapshot's ShadowServices were listed at. Like snapshot, it is called
// only from the rebuild worker.
func (s *sources) shadowsGen() uint64 { return s.last.shadows.gen }

// lastLists are the kept lists of the big kinds.
type lastLists struct {
	services listed[*corev1.Service]
	slices   listed[*discoveryv1.EndpointSlice]
	pods     listed[*snapshot.Pod]
	nodes    listed[*corev1.Node]
	shadows  listed[*corev1.Service]
}

// listed is one kind's kept list and the generation it was listed at.
// client-go's informers offer no "unchanged since" check on a cache, hence
// this counter beside them.
type listed[T any] struct {
	gen  uint64
	list []T
	ok   bool
}

// get returns the kept list while gen has not moved since it was listed,
// else lists anew with list (which adds its errors to errs) and keeps the
// result if listing failed nowhere. The generation is read before listing:
// an event that races the listing moves it again, so the next snapshot
// lists again (the event's handler also asks for that rebuild).
func (l *listed[T]) get(gen *atomic.Uint64, errs *[]error, list func(errs *[]error) []T) []T {
	g := gen.Load()
	if l.ok && l.gen == g {
		return l.list
	}
	var own []error
	out := list(&own)
	*errs = append(*errs, own...)
	l.ok = errors.Join(own...) == nil
	l.gen, l.list = g, out
	return out
}

// gather concatenates the per-namespace lists of one kind, keeping objects
// of meshed namespaces.
func gather[T metav1.Object](s *sources, lists []listFunc[T], errs *[]error) []T {
	return gatherBy(s, lists, func(o T) string { return o.GetNamespace() }, errs)
}

// gatherBy is gather for a kind that is no metav1.Object (snapshot.Pod).
func gatherBy[T any](s *sources, lists []listFunc[T], namespace func(T) string, errs *[]error) []T {
	if len(lists) == 1 { // one cluster-wide lister: its list is ours to filter
		objs, err := lists[0]()
		*errs = append(*errs, err)
		return slices.DeleteFunc(objs, func(o T) bool { return !s.filter.allows(namespace(o)) })
	}
	var out []T
	for _, list := range lists {
		objs, err := list()
		*errs = append(*errs, err)
		for _, o := range objs {
			if s.filter.allows(namespace(o)) {
				out = append(out, o)
			}
		}
	}
	return out
}
