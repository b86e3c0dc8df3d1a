package topology

import (
	"cmp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodemesh/nodemesh/pkg/portalloc"
	"github.com/nodemesh/nodemesh/pkg/shadow"
	"github.com/nodemesh/nodemesh/pkg/snapshot"
)

// inputs are the snapshot's objects indexed for the builders.
type inputs struct {
	// podsByName is built on first use: only slices without port numbers
	// need it, and 100,000 pods make it the costliest index.
	podsByName map[types.NamespacedName]*snapshot.Pod
	nodeZone   map[string]string
	slices     map[types.NamespacedName][]*discoveryv1.EndpointSlice
	// shadows are the facts of the mesh namespace's shadows by name;
	// allocs every shadow's allocations, sorted.
	shadows map[string]*shadowFacts
	allocs  []portalloc.Allocation
}

// zoneLabel is the well-known node zone label.
const zoneLabel = "topology.kubernetes.io/zone"

func (b *builder) indexInputsAnew() {
	s := b.snap
	b.shadows.next = make(map[*corev1.Service]*shadowFacts, len(s.ShadowServices))
	in := inputs{
		nodeZone: make(map[string]string, len(s.Nodes)),
		slices:   make(map[types.NamespacedName][]*discoveryv1.EndpointSlice, len(s.Services)),
		shadows:  make(map[string]*shadowFacts, len(s.ShadowServices)),
	}
	for _, n := range s.Nodes {
		if z := n.Labels[zoneLabel]; z != "" {
			in.nodeZone[n.Name] = z
		}
	}
	for _, es := range s.EndpointSlices {
		svc := es.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		k := nn(es.Namespace, svc)
		in.slices[k] = append(in.slices[k], es)
	}
	for k, list := range in.slices {
		slices.SortFunc(list, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) })
		in.slices[k] = list
	}
	for _, svc := range s.ShadowServices {
		f := b.shadows.facts(svc)
		in.allocs = append(in.allocs, f.allocs...)
		if svc.Namespace == b.opts.MeshNamespace {
			in.shadows[svc.Name] = f
		}
	}
	shadow.SortAllocations(in.allocs) // as shadow.Allocations
	b.in = in
}

// pod returns the snapshot's pod namespace/name, or nil.
func (b *builder) pod(namespace, name string) *snapshot.Pod {
	b.podLookups++
	if b.in.podsByName == nil {
		b.in.podsByName = make(map[types.NamespacedName]*snapshot.Pod, len(b.snap.Pods))
		for _, p := range b.snap.Pods {
			b.in.podsByName[nn(p.Namespace, p.Name)] = p
		}
	}
	return b.in.podsByName[nn(namespace, name)]
}

// buildPods lists the identity behind every pod IP. Pods without an IP,
// finished pods (their IP may already be reused) and hostNetwork pods (their
// IP is the node's, shared by every such pod) get none. When two remaining
// pods claim one IP, a pod that is not being deleted wins; if that does not
// settle it, the IP gets no identity and both pods get an error, since a
// wrong identity is worse than none.
func (b *builder) buildPods() []*Pod {
	// Sorting (IP, pod) pairs groups the claims of each IP without a map of
	// slices: 100,000 pods cost one sort.
	type claim struct {
		ip  string
		pod *snapshot.Pod
	}
	claims := make([]claim, 0, len(b.snap.Pods))
	for _, p := range b.snap.Pods {
		if p.HostNetwork || p.Phase == corev1.PodSucceeded || p.Phase == corev1.PodFailed {
			continue
		}
		for _, ip := range p.IPs {
			claims = append(claims, claim{ip, p})
		}
	}
	slices.SortFunc(claims, func(a, b claim) int {
		// Not cmp.Or: it would evaluate every comparison on this hot path.
		if c := strings.Compare(a.ip, b.ip); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(a.pod.Namespace, b.pod.Namespace), strings.Compare(a.pod.Name, b.pod.Name))
	})
	out := make([]*Pod, 0, len(claims))
	for i := 0; i < len(claims); {
		j := i + 1
		for j < len(claims) && claims[j].ip == claims[i].ip {
			j++
		}
		ip, group := claims[i].ip, claims[i:j]
		i = j
		p := group[0].pod
		if len(group) > 1 {
			var live []*snapshot.Pod
			for _, c := range group {
				if !c.pod.Deleting {
					live = append(live, c.pod)
				}
			}
			if len(live) != 1 {
				for _, c := range group {
					b.errs.add(KindPod, c.pod.Namespace, c.pod.Name, "pod IP %s is claimed by %d pods; it gets no identity until only one is left", ip, len(group))
				}
				continue
			}
			p = live[0]
		}
		sa := p.ServiceAccount
		if sa == "" {
			sa = "default"
		}
		out = append(out, &Pod{IP: ip, Namespace: p.Namespace, Name: p.Name, ServiceAccount: sa, Node: p.Node, Workload: p.Workload})
	}
	return out
}
