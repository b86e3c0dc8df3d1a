package topology

import (
	"slices"
	"strings"

	"github.com/nodemesh/nodemesh/pkg/snapshot"
)

// Build turns a snapshot into a Topology. It never fails: every problem is an
// ObjectError on the object at fault, and every other object still builds.
// The snapshot is not modified. A nil snapshot gives an empty Topology.
func Build(s *snapshot.Snapshot, opts Options) *Topology {
	if s == nil {
		s = &snapshot.Snapshot{}
	}
	b := &builder{snap: s, opts: opts.WithDefaults()}
	t := &Topology{Options: b.opts, SMI: s.SMI}
	if t.Options.Aliases != nil {
		t.Options.Aliases = slices.Clone(t.Options.Aliases)
	}

	b.indexInputs()
	t.Pods = b.buildPods()
	t.Nodes = b.buildNodes()
	t.Services = b.buildServices()
	b.attachEndpoints(t.Services)
	b.allocatePorts(t.Services)
	t.DNSRewrites = b.dnsRewrites(t.Services)

	t.HTTPRouteGroups = b.buildHTTPRouteGroups()
	t.TCPRoutes = b.buildStreamRoutes(KindTCPRoute)
	t.UDPRoutes = b.buildStreamRoutes(KindUDPRoute)
	t.Splits = b.buildSplits(t)
	t.idx = nil // the index was built before Splits existed
	t.TrafficTargets = b.buildTrafficTargets(t)

	t.Errors = b.errs.sorted()
	t.idx = nil // lookups see the final slices
	t.index()
	return t
}

// builder holds the working state of one Build.
type builder struct {
	snap *snapshot.Snapshot
	opts Options
	errs errorList

	in inputs
}

// sortedBy returns a sorted copy of objs, ordered by (namespace, name).
func sortedBy[T any](objs []T, key func(T) (string, string)) []T {
	out := slices.Clone(objs)
	slices.SortStableFunc(out, func(a, b T) int {
		an, aname := key(a)
		bn, bname := key(b)
		if c := strings.Compare(an, bn); c != 0 {
			return c
		}
		return strings.Compare(aname, bname)
	})
	return out
}
