package topology

import (
	"maps"
	"reflect"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodemesh/nodemesh/pkg/portalloc"
	"github.com/nodemesh/nodemesh/pkg/shadow"
)

// serviceMemos are a Builder's services of the previous build, each with
// its ports and endpoints, before anything that depends on other services
// (shadow names, proxy ports, splits) was set. A Service whose object and
// EndpointSlices are the very same as then is cloned from its memo instead
// of being parsed and matched against its slices again. It is one map,
// kept and pruned after each build (a new map per build cost as much as the
// memos saved at 3,000 services).
type serviceMemos struct {
	byKey map[types.NamespacedName]*serviceMemo
	round uint64 // the build using them
	// What every memo also depends on: the options (domain, aliases, default
	// traffic type) and the node zones (each endpoint's zone).
	opts  Options
	zones map[string]string
}

type serviceMemo struct {
	src    *corev1.Service
	slices []*discoveryv1.EndpointSlice
	svc    *Service // a template: cloned, never handed out
	errs   errorList
	// usesPods is set when resolving its endpoints looked up a pod (a named
	// targetPort without a number in the slice): it then also depends on
	// the pods.
	usesPods bool
	round    uint64 // the last build that used it
}

// serviceRound is one build's use of the memos: what it may reuse, and
// what it leaves for the next build.
type serviceRound struct {
	b *builder
	m serviceMemos
}

// begin starts a build's round; memos of other options or zones are dropped.
func (m serviceMemos) begin(b *builder) *serviceRound {
	if m.byKey == nil || !sameOptions(m.opts, b.opts) || !maps.Equal(m.zones, b.in.nodeZone) {
		m.byKey = map[types.NamespacedName]*serviceMemo{}
	}
	m.opts, m.zones = b.opts, b.in.nodeZone
	m.round++
	return &serviceRound{b: b, m: m}
}

// end returns the memos for the next build: the services of this one.
func (r *serviceRound) end() serviceMemos {
	maps.DeleteFunc(r.m.byKey, func(_ types.NamespacedName, m *serviceMemo) bool { return m.round != r.m.round })
	return r.m
}

// service builds the mesh service of k8s with its endpoints, or clones the
// memo when every input is the same object as last time.
func (r *serviceRound) service(k8s *corev1.Service) *Service {
	b := r.b
	key := nn(k8s.Namespace, k8s.Name)
	list := b.in.slices[key]
	if m := r.m.byKey[key]; m != nil && m.src == k8s && slices.Equal(m.slices, list) && (b.podsSame || !m.usesPods) {
		b.errs = append(b.errs, m.errs...)
		m.round = r.m.round
		return m.svc.clone()
	}
	errs, lookups := len(b.errs), b.podLookups
	svc := b.buildService(k8s)
	b.attachEndpoints(svc, list)
	r.m.byKey[key] = &serviceMemo{
		src: k8s, slices: slices.Clone(list), svc: svc.clone(),
		errs: slices.Clone(b.errs[errs:]), usesPods: b.podLookups != lookups, round: r.m.round,
	}
	return svc
}

// clone copies s deeply enough for a build to set its shadow name, cluster
// IPs, split and proxy ports; the endpoint lists, aliases and middleware are
// shared (nothing modifies them once built).
func (s *Service) clone() *Service {
	c := *s
	c.Ports = make([]*ServicePort, len(s.Ports))
	for i, p := range s.Ports {
		q := *p
		c.Ports[i] = &q
	}
	return &c
}

// sameOptions compares every option (a service's build reads only a few;
// comparing all keeps that true when it reads more).
func sameOptions(a, b Options) bool {
	if !slices.Equal(a.Aliases, b.Aliases) {
		return false
	}
	a.Aliases, b.Aliases = nil, nil
	return reflect.DeepEqual(a, b)
}

// shadowFacts is what a build reads from one shadow Service: the source it
// points back to, its ClusterIPs and its proxy-port allocations. A Builder
// keeps them by object from one build to the next, because every build
// reads every shadow and the reading is dear for its size: three label
// lookups in each shadow's own map, scattered over the heap, were a tenth
// of the controller's CPU during weight edits at 3,000 services.
type shadowFacts struct {
	src    types.NamespacedName
	ok     bool     // a nodemesh shadow that names its source
	ips    []string // ClusterIPs, sorted, without "" and None; shared, never modified
	allocs []portalloc.Allocation
}

func factsOf(sh *corev1.Service) *shadowFacts {
	f := &shadowFacts{allocs: shadow.ServiceAllocations(sh)}
	f.src, f.ok = shadow.SourceOf(sh)
	if !f.ok {
		return f
	}
	ips := slices.Clone(sh.Spec.ClusterIPs)
	if len(ips) == 0 && sh.Spec.ClusterIP != "" {
		ips = []string{sh.Spec.ClusterIP}
	}
	ips = slices.DeleteFunc(ips, func(ip string) bool { return ip == "" || ip == corev1.ClusterIPNone })
	slices.Sort(ips)
	if len(ips) > 0 {
		f.ips = ips
	}
	return f
}

// shadowRound hands out a build's shadow facts, reusing the previous
// build's for the same objects (informer objects are replaced, never
// modified, on change).
type shadowRound struct {
	prev, next map[*corev1.Service]*shadowFacts
}

func (r *shadowRound) facts(sh *corev1.Service) *shadowFacts {
	f := r.prev[sh]
	if f == nil {
		f = factsOf(sh)
	}
	r.next[sh] = f
	return f
}

// namesMemo is the shadow names of one list of mesh services: they depend
// on that list alone (shadow.Names), which most rebuilds leave as it was.
type namesMemo struct {
	keys  []types.NamespacedName
	names map[types.NamespacedName]string
}

// of returns the shadow names of keys, reusing the memo's for equal keys
// and keeping the new ones otherwise. The map is shared, never modified.
func (m *namesMemo) of(keys []types.NamespacedName) map[types.NamespacedName]string {
	if m.names == nil || !slices.Equal(m.keys, keys) {
		m.keys, m.names = keys, shadow.Names(keys)
	}
	return m.names
}
