package topology

import (
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/nodemesh/nodemesh/pkg/snapshot"
)

// Build turns a snapshot into a Topology. It never fails: every problem is an
// ObjectError on the object at fault, and every other object still builds.
// The snapshot is not modified. A nil snapshot gives an empty Topology.
func Build(s *snapshot.Snapshot, opts Options) *Topology {
	return new(Builder).Build(s, opts)
}

// Builder is Build with a memory: it keeps what its previous build derived
// from inputs that have not changed since, and reuses it. Its output is
// always what Build gives for the same snapshot; only the cost differs.
//
// The memory is keyed by object identity. A snapshot's objects come from
// informer caches, which replace an object on every change and never modify
// one in place, so the same pointer means the same content. It keeps the
// pod identities (every pod of the mesh, which a weight edit or a new
// Service leaves as they were), each service with its endpoints, what it
// read from each shadow Service, and the sorted and indexed forms of the
// snapshot's Service, EndpointSlice, Node and shadow lists.
//
// Lists are also compared by identity: a list the Builder was given must
// never be modified afterwards, so that the same list (same first element
// and length) means the same content. The controller's snapshots share
// unchanged lists on that promise.
//
// Reused results are shared between the Topologies of successive builds,
// which, like every Topology, must not be modified. A Builder is safe for
// concurrent use, though builds then wait for each other.
type Builder struct {
	mu       sync.Mutex
	pods     *podMemo
	services serviceMemos
	shadows  map[*corev1.Service]*shadowFacts
	// sorted is the previous build's Services list and its sorted copy;
	// index its inputs index and the lists and mesh namespace it came from.
	sorted struct{ from, out []*corev1.Service }
	index  inputIndex
	names  namesMemo
}

// podMemo is the pod identities built from one set of snapshot pods.
type podMemo struct {
	from []*snapshot.Pod
	in   map[*snapshot.Pod]struct{}
	out  []*Pod
	errs errorList
}

// sameInputs reports whether pods are exactly the memo's input (each
// pointer once).
func (m *podMemo) sameInputs(pods []*snapshot.Pod) bool {
	if m == nil || len(m.in) != len(pods) {
		return false
	}
	if sameSlice(m.from, pods) {
		return true
	}
	for _, p := range pods {
		if _, ok := m.in[p]; !ok {
			return false
		}
	}
	return true
}

// Build builds s like the package's Build, reusing what it can.
func (bu *Builder) Build(s *snapshot.Snapshot, opts Options) *Topology {
	bu.mu.Lock()
	defer bu.mu.Unlock()
	if s == nil {
		s = &snapshot.Snapshot{}
	}
	b := &builder{snap: s, opts: opts.WithDefaults()}
	b.shadows = shadowRound{prev: bu.shadows}
	t := &Topology{Options: b.opts, SMI: s.SMI}
	if t.Options.Aliases != nil {
		t.Options.Aliases = slices.Clone(t.Options.Aliases)
	}

	bu.indexInputs(b)
	t.Pods = bu.buildPods(b)
	t.Nodes = b.buildNodes()
	b.memo = bu.services.begin(b)
	b.names = &bu.names
	if !sameSlice(bu.sorted.from, s.Services) {
		bu.sorted.from, bu.sorted.out = s.Services, sortedBy(s.Services, func(s *corev1.Service) (string, string) { return s.Namespace, s.Name })
	}
	t.Services = b.buildServices(bu.sorted.out)
	bu.services = b.memo.end()
	bu.shadows = b.shadows.next
	b.allocatePorts(t.Services)
	t.DNSRewrites = b.dnsRewrites(t.Services)

	t.HTTPRouteGroups = b.buildHTTPRouteGroups()
	t.TCPRoutes = b.buildStreamRoutes(KindTCPRoute)
	t.UDPRoutes = b.buildStreamRoutes(KindUDPRoute)
	t.Splits = b.buildSplits(t)
	t.reindex() // an index built before Splits existed lacks them
	t.TrafficTargets = b.buildTrafficTargets(t)

	t.Errors = b.errs.sorted()
	t.reindex() // lookups see the final slices
	t.index()
	return t
}

// indexInputs indexes the snapshot's lists, or reuses the previous index
// when they are the very same lists. The index's pods by name are built on
// demand and depend on the pods, so they are never reused.
func (bu *Builder) indexInputs(b *builder) {
	x, s := &bu.index, b.snap
	if x.ok && sameSlice(x.nodes, s.Nodes) && sameSlice(x.slices, s.EndpointSlices) &&
		sameSlice(x.shadows, s.ShadowServices) && x.meshNamespace == b.opts.MeshNamespace {
		b.in = x.in
		b.shadows.next = b.shadows.prev // every shadow's facts stay as they are
		return
	}
	b.indexInputsAnew()
	*x = inputIndex{b.in, s.Nodes, s.EndpointSlices, s.ShadowServices, b.opts.MeshNamespace, true}
	x.in.podsByName = nil
}

// inputIndex is a build's inputs index and the lists and mesh namespace it
// was made from.
type inputIndex struct {
	in            inputs
	nodes         []*corev1.Node
	slices        []*discoveryv1.EndpointSlice
	shadows       []*corev1.Service
	meshNamespace string
	ok            bool
}

// sameSlice reports whether a and b are the same list: the same first
// element and length (see Builder on why that means the same content).
func sameSlice[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// buildPods reuses the previous pod identities, and their errors, when the
// snapshot holds exactly the same pods.
func (bu *Builder) buildPods(b *builder) []*Pod {
	if bu.pods.sameInputs(b.snap.Pods) {
		b.errs = append(b.errs, bu.pods.errs...)
		b.podsSame = true
		return bu.pods.out
	}
	before := len(b.errs)
	out := b.buildPods()
	m := &podMemo{from: b.snap.Pods, in: make(map[*snapshot.Pod]struct{}, len(b.snap.Pods)), out: out, errs: slices.Clone(b.errs[before:])}
	for _, p := range b.snap.Pods {
		m.in[p] = struct{}{}
	}
	bu.pods = nil
	if len(m.in) == len(b.snap.Pods) { // a pod listed twice is built afresh every time
		bu.pods = m
	}
	return out
}

// builder holds the working state of one Build.
type builder struct {
	snap *snapshot.Snapshot
	opts Options
	errs errorList

	in inputs

	// podsSame is set when the snapshot's pods are the previous build's;
	// podLookups counts lookups of a pod by name (named targetPorts), so a
	// service whose endpoints needed one is rebuilt when pods change.
	podsSame   bool
	podLookups int
	memo       *serviceRound
	shadows    shadowRound
	names      *namesMemo
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
