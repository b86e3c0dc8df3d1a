package controller

import (
	"errors"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodemesh/nodemesh/pkg/smidiscovery"
	"github.com/nodemesh/nodemesh/pkg/snapshot"
)

// snapshot reads every lister into a Snapshot: the only place the
// controller reads its caches. User objects of ignored namespaces are dropped
// (a cluster-wide informer sees them).
func (s *sources) snapshot(smi smidiscovery.Result) (*snapshot.Snapshot, error) {
	var errs []error
	snap := &snapshot.Snapshot{SMI: smi.Status}
	snap.Services = gather(s, s.services, &errs)
	snap.EndpointSlices = gather(s, s.slices, &errs)
	snap.Pods = gatherBy(s, s.pods, func(p *snapshot.Pod) string { return p.Namespace }, &errs)
	snap.TrafficSplits = gather(s, s.splits, &errs)
	snap.HTTPRouteGroups = gather(s, s.httpGroups, &errs)
	snap.TCPRoutes = gather(s, s.tcpRoutes, &errs)
	snap.UDPRoutes = gather(s, s.udpRoutes, &errs)
	for _, tt := range gather(s, s.targets, &errs) {
		snap.TrafficTargets = append(snap.TrafficTargets, tt.TrafficTarget)
		if tt.port != 0 {
			if snap.TrafficTargetPorts == nil {
				snap.TrafficTargetPorts = map[types.NamespacedName]int32{}
			}
			snap.TrafficTargetPorts[types.NamespacedName{Namespace: tt.Namespace, Name: tt.Name}] = tt.port
		}
	}

	nodes, err := s.nodes()
	errs = append(errs, err)
	snap.Nodes = nodes
	shadows, err := s.shadows()
	errs = append(errs, err)
	snap.ShadowServices = shadows

	// Pods without an IP can neither be an endpoint nor a source. The list
	// is this snapshot's own, so it is filtered in place.
	snap.Pods = slices.DeleteFunc(snap.Pods, func(p *snapshot.Pod) bool { return len(p.IPs) == 0 })
	return snap, errors.Join(errs...)
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
