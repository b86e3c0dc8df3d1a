package controller

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	accessclient "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/access/clientset/versioned"
	accessinformers "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/access/informers/externalversions"
	specsclient "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/specs/clientset/versioned"
	specsinformers "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/specs/informers/externalversions"
	splitclient "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/split/clientset/versioned"
	splitinformers "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/split/informers/externalversions"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/nodemesh/nodemesh/pkg/shadow"
	"github.com/nodemesh/nodemesh/pkg/smidiscovery"
	"github.com/nodemesh/nodemesh/pkg/snapshot"
)

// clients are the API clients the controller uses.
type clients struct {
	kube   kubernetes.Interface
	split  splitclient.Interface
	specs  specsclient.Interface
	access accessclient.Interface
}

// kindShadow names shadow Services in metrics and handlers.
const kindShadow = "ShadowService"

// starter is an informer factory.
type starter interface{ Start(stopCh <-chan struct{}) }

// sources holds every informer the controller reads and, per kind, the
// listers the snapshot reads them through: one per informer namespace when
// --watch-namespaces is set, else one cluster-wide.
type sources struct {
	filter    namespaceFilter
	factories []starter
	synced    []cache.InformerSynced

	services []listFunc[*corev1.Service]
	slices   []listFunc[*discoveryv1.EndpointSlice]
	pods     []listFunc[*snapshot.Pod] // the transform's compact pods
	nodes    listFunc[*corev1.Node]
	shadows  listFunc[*corev1.Service]
	// shadowLister gets one shadow Service for the shadow writers.
	shadowLister corelisters.ServiceLister

	// smi holds the informers of the SMI versions discovery found; when
	// a later discovery finds others, swapSMI replaces them whole.
	smi atomic.Pointer[smiSources]
	// What swapSMI needs to make SMI informers as newSources did.
	clients clients
	resync  time.Duration
	handler func(kind string) cache.ResourceEventHandler

	// gens counts, per kind, the events that can change a snapshot; last
	// keeps the lists of the big kinds for the next snapshot (snapshot.go).
	gens map[string]*atomic.Uint64
	last lastLists
}

// smiSources are the SMI informers and listers of one discovery result.
type smiSources struct {
	result    smidiscovery.Result
	factories []starter
	synced    []cache.InformerSynced
	stop      chan struct{}
	closeOnce sync.Once

	splits     []listFunc[*splitv1alpha4.TrafficSplit] // converted from the discovered version
	httpGroups []listFunc[*specsv1alpha4.HTTPRouteGroup]
	tcpRoutes  []listFunc[*specsv1alpha4.TCPRoute]
	udpRoutes  []listFunc[*specsv1alpha4.UDPRoute]
	targets    []listFunc[trafficTarget] // converted from the discovered version
}

// smiKinds are the SMI kinds' names in handlers, metrics and generations.
var smiKinds = []string{"TrafficSplit", "HTTPRouteGroup", "TCPRoute", "UDPRoute", "TrafficTarget"}

// start runs m's informers until parent is closed or m is closed.
func (m *smiSources) start(parent <-chan struct{}) {
	go func() {
		select {
		case <-parent:
			m.close()
		case <-m.stop:
		}
	}()
	for _, f := range m.factories {
		f.Start(m.stop)
	}
}

// close stops m's informers.
func (m *smiSources) close() { m.closeOnce.Do(func() { close(m.stop) }) }

// gen returns kind's event generation; newSources makes them all before
// any informer runs (the SMI kinds' too, whichever are served), so the map
// is only read afterwards.
func (s *sources) gen(kind string) *atomic.Uint64 {
	g := s.gens[kind]
	if g == nil {
		g = new(atomic.Uint64)
		s.gens[kind] = g
	}
	return g
}

// counting bumps a generation before its handler sees an event that can
// change a snapshot; an update relevantUpdate ignores cannot.
type counting struct {
	gen  *atomic.Uint64
	next cache.ResourceEventHandler
}

func (h counting) OnAdd(obj any, initial bool) { h.gen.Add(1); h.next.OnAdd(obj, initial) }
func (h counting) OnDelete(obj any)            { h.gen.Add(1); h.next.OnDelete(obj) }
func (h counting) OnUpdate(old, cur any) {
	if relevantUpdate(old, cur) {
		h.gen.Add(1)
	}
	h.next.OnUpdate(old, cur)
}

// listFunc lists every object of one kind from an informer cache, in a new
// list the caller owns (the objects are the cache's, and shared).
type listFunc[T any] func() ([]T, error)

// lister is what every generated lister has.
type lister[T any] interface {
	List(selector labels.Selector) ([]T, error)
}

// listAll adapts a lister.
func listAll[T any](l lister[T]) listFunc[T] {
	return func() ([]T, error) { return l.List(labels.Everything()) }
}

// listPods lists a Pod informer's cache, which holds *snapshot.Pod (see
// transform): the generated Pod lister would panic on them.
func listPods(inf cache.SharedIndexInformer) listFunc[*snapshot.Pod] {
	store := inf.GetStore()
	return func() ([]*snapshot.Pod, error) {
		objs := store.List()
		out := make([]*snapshot.Pod, 0, len(objs))
		var err error
		for _, o := range objs {
			if p, ok := o.(*snapshot.Pod); ok {
				out = append(out, p)
			} else {
				err = fmt.Errorf("the pod cache holds a %T", o)
			}
		}
		return out, err
	}
}

// converted lists objects of an older version and converts each.
func converted[From, To any](l lister[From], convert func(From) To) listFunc[To] {
	return func() ([]To, error) {
		in, err := l.List(labels.Everything())
		out := make([]To, len(in))
		for i, o := range in {
			out[i] = convert(o)
		}
		return out, err
	}
}

// newSources makes the informers, registers handler on each (under the
// informer kind's name) and returns the listers. Nothing runs until start.
func newSources(c clients, cfg Config, smi smidiscovery.Result, handler func(kind string) cache.ResourceEventHandler) *sources {
	s := &sources{filter: newNamespaceFilter(cfg), gens: map[string]*atomic.Uint64{},
		clients: c, resync: cfg.ResyncPeriod, handler: handler}
	for _, k := range smiKinds {
		s.gen(k)
	}
	resync := s.resync
	add := func(kind string, inf cache.SharedIndexInformer, userObjects bool) {
		s.synced = append(s.synced, s.register(kind, inf, userObjects))
	}

	for _, ns := range s.filter.informerNamespaces() {
		tweak := s.filter.listOptions(ns)
		f := informers.NewSharedInformerFactoryWithOptions(c.kube, resync, informers.WithNamespace(ns), informers.WithTweakListOptions(tweak))
		svc, es, pod := f.Core().V1().Services(), f.Discovery().V1().EndpointSlices(), f.Core().V1().Pods()
		add("Service", svc.Informer(), true)
		add("EndpointSlice", es.Informer(), true)
		add("Pod", pod.Informer(), true)
		s.services = append(s.services, listAll(svc.Lister()))
		s.slices = append(s.slices, listAll(es.Lister()))
		s.pods = append(s.pods, listPods(pod.Informer())) // never pod.Lister(): see listPods
		s.factories = append(s.factories, f)
	}
	first := s.newSMISources(smi)
	s.synced = append(s.synced, first.synced...)
	s.smi.Store(first)

	nodes := informers.NewSharedInformerFactory(c.kube, resync)
	node := nodes.Core().V1().Nodes()
	add("Node", node.Informer(), false)
	s.nodes = listAll(node.Lister())
	s.factories = append(s.factories, nodes)

	// Shadow services: only ours, only in the mesh namespace.
	mesh := informers.NewSharedInformerFactoryWithOptions(c.kube, resync, informers.WithNamespace(cfg.MeshNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = shadow.LabelManagedBy + "=" + shadow.ManagedByValue
		}))
	sh := mesh.Core().V1().Services()
	add(kindShadow, sh.Informer(), false)
	s.shadows = listAll(sh.Lister())
	s.shadowLister = sh.Lister()
	s.factories = append(s.factories, mesh)
	return s
}

// register sets the transform and the counted handler of one informer and
// returns its HasSynced.
func (s *sources) register(kind string, inf cache.SharedIndexInformer, userObjects bool) cache.InformerSynced {
	_ = inf.SetTransform(transform)
	var h cache.ResourceEventHandler = counting{gen: s.gen(kind), next: s.handler(kind)}
	if userObjects {
		// A cluster-wide informer also sees ignored namespaces; their
		// events must not cost a rebuild.
		h = cache.FilteringResourceEventHandler{FilterFunc: s.inScope, Handler: h}
	}
	_, _ = inf.AddEventHandler(h)
	return inf.HasSynced
}

// newSMISources makes the informers of the SMI versions smi found, in every
// informer namespace. Nothing runs until its start.
func (s *sources) newSMISources(smi smidiscovery.Result) *smiSources {
	m := &smiSources{result: smi, stop: make(chan struct{})}
	for _, ns := range s.filter.informerNamespaces() {
		m.add(s, ns)
	}
	return m
}

// add adds the informers of the SMI versions m.result found in namespace ns.
func (m *smiSources) add(s *sources, ns string) {
	c, resync, smi, tweak := s.clients, s.resync, m.result, s.filter.listOptions(ns)
	add := func(kind string, inf cache.SharedIndexInformer, userObjects bool) {
		m.synced = append(m.synced, s.register(kind, inf, userObjects))
	}
	if v := smi.Status.Split; v != "" {
		f := splitinformers.NewSharedInformerFactoryWithOptions(c.split, resync, splitinformers.WithNamespace(ns), splitinformers.WithTweakListOptions(tweak))
		switch v {
		case "v1alpha4":
			i := f.Split().V1alpha4().TrafficSplits()
			add("TrafficSplit", i.Informer(), true)
			m.splits = append(m.splits, listAll(i.Lister()))
		case "v1alpha3":
			i := f.Split().V1alpha3().TrafficSplits()
			add("TrafficSplit", i.Informer(), true)
			m.splits = append(m.splits, converted(i.Lister(), splitFromV1alpha3))
		case "v1alpha2":
			i := f.Split().V1alpha2().TrafficSplits()
			add("TrafficSplit", i.Informer(), true)
			m.splits = append(m.splits, converted(i.Lister(), splitFromV1alpha2))
		}
		m.factories = append(m.factories, f)
	}
	if smi.Status.Specs == "v1alpha4" {
		f := specsinformers.NewSharedInformerFactoryWithOptions(c.specs, resync, specsinformers.WithNamespace(ns), specsinformers.WithTweakListOptions(tweak))
		v := f.Specs().V1alpha4()
		if smi.HTTPRouteGroups {
			i := v.HTTPRouteGroups()
			add("HTTPRouteGroup", i.Informer(), true)
			m.httpGroups = append(m.httpGroups, listAll(i.Lister()))
		}
		if smi.TCPRoutes {
			i := v.TCPRoutes()
			add("TCPRoute", i.Informer(), true)
			m.tcpRoutes = append(m.tcpRoutes, listAll(i.Lister()))
		}
		if smi.UDPRoutes {
			i := v.UDPRoutes()
			add("UDPRoute", i.Informer(), true)
			m.udpRoutes = append(m.udpRoutes, listAll(i.Lister()))
		}
		m.factories = append(m.factories, f)
	}
	if v := smi.Status.Access; v != "" {
		f := accessinformers.NewSharedInformerFactoryWithOptions(c.access, resync, accessinformers.WithNamespace(ns), accessinformers.WithTweakListOptions(tweak))
		switch v {
		case "v1alpha2":
			i := f.Access().V1alpha2().TrafficTargets()
			add("TrafficTarget", i.Informer(), true)
			m.targets = append(m.targets, converted(i.Lister(), targetFromV1alpha2))
		case "v1alpha3":
			i := f.Access().V1alpha3().TrafficTargets()
			add("TrafficTarget", i.Informer(), true)
			m.targets = append(m.targets, converted(i.Lister(), func(o *accessv1alpha3.TrafficTarget) trafficTarget { return trafficTarget{TrafficTarget: o} }))
		}
		m.factories = append(m.factories, f)
	}
}

// start runs every informer until stop is closed.
func (s *sources) start(stop <-chan struct{}) {
	for _, f := range s.factories {
		f.Start(stop)
	}
	s.smi.Load().start(stop)
}

// swapSMI starts the informers of a new SMI discovery result, to run until
// run ends, waits for their caches until wait ends, and then makes them the
// ones snapshots read, stopping the previous ones. If the caches do not
// sync in time, the new informers are stopped and the previous ones kept.
func (s *sources) swapSMI(run, wait context.Context, smi smidiscovery.Result) error {
	next := s.newSMISources(smi)
	next.start(run.Done())
	if !cache.WaitForCacheSync(wait.Done(), next.synced...) {
		next.close()
		return fmt.Errorf("the caches of %s did not sync: %w", smi.Summary(), context.Cause(wait))
	}
	s.smi.Swap(next).close()
	return nil
}

// inScope is the event filter of user objects.
func (s *sources) inScope(obj any) bool {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	switch o := obj.(type) {
	case *snapshot.Pod:
		return s.filter.allows(o.Namespace)
	case metav1.Object:
		return s.filter.allows(o.GetNamespace())
	}
	return false
}
