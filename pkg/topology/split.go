package topology

import (
	"cmp"
	"slices"

	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
)

// buildSplits checks every TrafficSplit and resolves the active ones:
//   - one split per root: when several name the same root, the first in name
//     order owns it and the others are errors;
//   - the root and every backend must be mesh services; weights must be
//     non-negative with a positive sum; matches must name existing
//     HTTPRouteGroups, TCPRoutes or UDPRoutes;
//   - a backend that is itself the root of an owning, locally valid split
//     without matches is resolved through it, recursively (a split with
//     matches is not flattened into another: its backend's own endpoints
//     serve, and the outer split says so); a cycle is an error on every split
//     whose resolution meets it, and those splits are inactive;
//   - every resolved backend must have every port of the root (number and
//     protocol).
//
// A backend naming the split's own root means the root's own endpoints.
// An inactive split leaves its root served as a plain service.
func (b *builder) buildSplits(t *Topology) []*Split {
	src := sortedBy(b.snap.TrafficSplits, func(s *splitv1alpha4.TrafficSplit) (string, string) { return s.Namespace, s.Name })
	out := make([]*Split, 0, len(src))
	owner := map[[2]string]*Split{} // (namespace, root) -> owning split
	svcOf := t.Service

	for _, ts := range src {
		sp := &Split{Namespace: ts.Namespace, Name: ts.Name, Service: ts.Spec.Service, Backends: []SplitBackend{}}
		out = append(out, sp)
		ok := b.checkSplit(t, ts, sp, svcOf)
		k := [2]string{ts.Namespace, ts.Spec.Service}
		if first, taken := owner[k]; taken {
			b.errs.add(KindTrafficSplit, sp.Namespace, sp.Name, "service %q already has TrafficSplit %q (the first by name wins); ignored", sp.Service, first.Name)
			continue
		}
		owner[k] = sp
		sp.Active = ok // provisional: local checks only
	}

	// Resolve against the provisional states, then commit: a split's
	// activity must not depend on the order splits are resolved in.
	r := newResolver(b, t, owner)
	final := make(map[*Split]bool, len(out))
	leaves := make(map[*Split][]SplitBackend, len(out))
	for _, sp := range out {
		if !sp.Active {
			continue
		}
		l, ok := r.resolve(sp)
		final[sp], leaves[sp] = ok, l
	}
	for _, sp := range out {
		sp.Active = final[sp]
		sp.Leaves = leaves[sp]
		if sp.Active {
			svcOf(sp.Namespace, sp.Service).Split = sp.Name
		}
	}
	return out
}

// checkSplit fills sp from ts and reports whether the split is locally
// valid; every problem is an error on the split.
func (b *builder) checkSplit(t *Topology, ts *splitv1alpha4.TrafficSplit, sp *Split, svcOf func(ns, name string) *Service) bool {
	bad := func(format string, args ...any) {
		b.errs.add(KindTrafficSplit, ts.Namespace, ts.Name, format+"; split ignored", args...)
	}
	ok := true
	if ts.Spec.Service == "" {
		bad("spec.service is empty")
		ok = false
	} else if svcOf(ts.Namespace, ts.Spec.Service) == nil {
		bad("root service %q is not a mesh service (missing, or not meshable)", ts.Spec.Service)
		ok = false
	}

	weights := map[string]int64{}
	var sum int64
	for _, be := range ts.Spec.Backends {
		switch {
		case be.Service == "":
			bad("a backend has no service")
			ok = false
		case be.Weight < 0:
			bad("backend %q has negative weight %d", be.Service, be.Weight)
			ok = false
		case svcOf(ts.Namespace, be.Service) == nil:
			bad("backend service %q is not a mesh service (missing, or not meshable)", be.Service)
			ok = false
		default:
			weights[be.Service] += int64(be.Weight)
			sum += int64(be.Weight)
		}
	}
	if len(ts.Spec.Backends) == 0 {
		bad("no backends")
		ok = false
	} else if ok && sum == 0 {
		bad("backend weights sum to 0")
		ok = false
	} else if sum > maxWeightSum {
		bad("backend weights sum to %d, more than %d", sum, maxWeightSum)
		ok = false
	}
	for name, w := range weights {
		sp.Backends = append(sp.Backends, SplitBackend{Service: name, Weight: int32(w)})
	}
	slices.SortFunc(sp.Backends, func(a, b SplitBackend) int { return cmp.Compare(a.Service, b.Service) })

	for _, m := range ts.Spec.Matches {
		sp.Matches = append(sp.Matches, SplitMatch{Kind: m.Kind, Name: m.Name})
		var found bool
		switch m.Kind {
		case KindHTTPRouteGroup:
			found = t.HTTPRouteGroup(ts.Namespace, m.Name) != nil
		case KindTCPRoute:
			found = t.TCPRoute(ts.Namespace, m.Name) != nil
		case KindUDPRoute:
			found = t.UDPRoute(ts.Namespace, m.Name) != nil
		default:
			bad("match %s %q: kind not supported (want HTTPRouteGroup, TCPRoute or UDPRoute)", m.Kind, m.Name)
			ok = false
			continue
		}
		if !found {
			// Dropping just this reference could leave no match at all, which
			// would send every request to the backends: ignore the split.
			bad("match %s %q does not exist", m.Kind, m.Name)
			ok = false
		}
	}
	return ok
}

// maxWeightSum bounds the sum of one split's weights, so flattened integer
// weights stay exact in int64 for reasonable nesting.
const maxWeightSum = 1 << 20
