package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/nodemesh/nodemesh/pkg/shadow"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

// freshLimit is the most new differences one rebuild may find and still have
// them written in the fresh lane. More than that is a bulk change (a cold
// start, a mass apply), which goes to the bulk lane so it cannot delay a
// single Service created behind it: Traefik Mesh's one FIFO left such a
// Service without a shadow for minutes.
const freshLimit = 50

// desiredState is one build's desired shadows: the specs, by shadow name.
// A spec is rendered into a Service object only when it is compared or
// written (shadow.Render): keeping every rendered object (labels, selector
// and ports of a full corev1.Service) cost about 5 KB per mesh service. gen
// changes whenever the specs do, so a diff against an unchanged lister can
// be skipped.
type desiredState struct {
	specs  []shadow.Spec
	byName map[string]int // index into specs, for specs with ports
	gen    uint64
}

// service renders the desired shadow Service name, or returns nil when no
// source wants it.
func (d *desiredState) service(name string) *corev1.Service {
	if d == nil {
		return nil
	}
	i, ok := d.byName[name]
	if !ok {
		return nil
	}
	return shadow.Render(&d.specs[i])
}

// nextDesired returns the desired shadows of topo: prev itself when topo
// wants the same specs (most rebuilds change no shadow), else a new state.
func nextDesired(prev *desiredState, topo *topology.Topology) *desiredState {
	specs := topo.ShadowSpecs()
	if prev != nil && slices.EqualFunc(prev.specs, specs, sameSpec) {
		return prev
	}
	d := &desiredState{specs: specs, byName: make(map[string]int, len(specs)), gen: 1}
	if prev != nil {
		d.gen = prev.gen + 1
	}
	for i := range specs {
		if len(specs[i].Ports) > 0 {
			d.byName[specs[i].Name] = i
		}
	}
	return d
}

func sameSpec(a, b shadow.Spec) bool {
	return a.Namespace == b.Namespace && a.Name == b.Name && a.Source == b.Source && slices.Equal(a.Ports, b.Ports)
}

// shadowWriter writes shadow Services while this replica leads. Each key is
// a shadow Service name in the mesh namespace; the worker compares the
// latest desired object with the lister and writes only the difference
// (create, update or delete), so a restart with nothing changed writes
// nothing, unlike Traefik Mesh's create-or-update of every shadow.
type shadowWriter struct {
	c      *Controller
	kube   kubernetes.Interface
	lister corelisters.ServiceLister
	ns     string
	// ips chooses a new shadow's ClusterIP (shadow.IPPicker); nil: the
	// apiserver allocates it.
	ips *shadow.IPPicker

	// Two lanes (see freshLimit), each with its own workers; the client's
	// rate limiter is shared, so the lanes add no load.
	bulk, fresh workqueue.TypedRateLimitingInterface[string]
	freshActive atomic.Int32 // fresh-lane writes in progress (yieldToFresh)

	mu      sync.Mutex
	pending map[string]bool // enqueued in a lane and not yet written
	// writing holds the names a worker is syncing; again, those among
	// them that a diff found different while they were (see requeue).
	writing, again map[string]bool
	started        bool // a first diff was enqueued (it goes to bulk)
	// awaited holds the names enqueued in the fresh lane, with when: a
	// Service someone just created waits for its shadow's ClusterIP, so
	// the event of that shadow rebuilds at once instead of being spaced
	// with a backlog's echoes (Controller.shadowDelay).
	awaited map[string]time.Time

	// The inputs of the last diff, which enqueueDiff skips when all are
	// unchanged: the desired generation, the shadow informer's event
	// generation and the lister's objects (replaced by the informer on
	// every change). The objects alone are not enough: a shadow created
	// and deleted between two diffs leaves the same (empty) set, and that
	// diff must still find it missing.
	diffedGen       uint64
	diffedActualGen uint64
	diffedActual    map[*corev1.Service]struct{}

	// seenIPs holds the ClusterIP each shadow was last seen with, in a
	// diff or in the answer to its own create, so that a shadow deleted
	// from under the controller comes back with it (create), also when
	// it is deleted before any diff saw it.
	seenIPs map[string]string
}

func newShadowWriter(c *Controller) *shadowWriter {
	q := func(name string) workqueue.TypedRateLimitingInterface[string] {
		return workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: name})
	}
	return &shadowWriter{
		c: c, kube: c.clients.kube, lister: c.src.shadowLister, ns: c.cfg.MeshNamespace,
		bulk: q("nodemesh-shadows-bulk"), fresh: q("nodemesh-shadows-fresh"),
		pending: map[string]bool{}, writing: map[string]bool{}, again: map[string]bool{},
		seenIPs: map[string]string{},
	}
}

// awaitedTTL bounds how long a fresh-lane name is awaited: a write that
// turned out to be needless makes no event to take it.
const awaitedTTL = time.Minute

// takeAwaited reports whether name was enqueued in the fresh lane and not
// yet seen, and forgets it.
func (w *shadowWriter) takeAwaited(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.awaited[name]
	delete(w.awaited, name)
	return ok
}

// run starts workers per lane and shuts the lanes down when ctx ends.
func (w *shadowWriter) run(ctx context.Context, workers int) {
	for _, q := range []workqueue.TypedRateLimitingInterface[string]{w.bulk, w.fresh} {
		for range workers {
			go wait.UntilWithContext(ctx, func(ctx context.Context) {
				for w.processNext(ctx, q) {
				}
			}, 0)
		}
	}
	go func() {
		<-ctx.Done()
		w.bulk.ShutDown()
		w.fresh.ShutDown()
	}()
}

// enqueueDiff enqueues every shadow whose lister state differs from desired,
// and every orphan (a managed shadow no source wants). actualGen is the
// shadow informer's event generation that actual was listed at. A diff of
// the same desired generation against the same lister objects at the same
// event generation as the last one finds nothing new (its names were
// enqueued then, and failed writes are retried by the lanes), so it is
// skipped.
func (w *shadowWriter) enqueueDiff(d *desiredState, actual []*corev1.Service, actualGen uint64) {
	if w.sameDiffInputs(d.gen, actual, actualGen) {
		return
	}
	byName := make(map[string]*corev1.Service, len(actual))
	var diffs []string
	for _, a := range actual {
		byName[a.Name] = a
		if _, wanted := d.byName[a.Name]; !wanted && a.Labels[shadow.LabelManagedBy] == shadow.ManagedByValue {
			diffs = append(diffs, a.Name)
		}
	}
	for name := range d.byName {
		if shadow.NeedsUpdate(d.service(name), byName[name]) {
			diffs = append(diffs, name)
		}
	}
	slices.Sort(diffs) // write in name order, not map order
	w.mu.Lock()
	defer w.mu.Unlock()
	fresh := diffs[:0]
	for _, name := range diffs {
		switch {
		case !w.pending[name]:
			w.pending[name] = true
			fresh = append(fresh, name)
		case w.writing[name]:
			// Its worker may have read the lister before this change;
			// it syncs the name once more when done.
			w.again[name] = true
		}
	}
	w.diffedGen, w.diffedActualGen = d.gen, actualGen
	w.diffedActual = make(map[*corev1.Service]struct{}, len(actual))
	for _, a := range actual {
		w.diffedActual[a] = struct{}{}
		w.seeIPLocked(a)
	}
	lane := w.fresh
	if !w.started || len(fresh) > freshLimit {
		lane = w.bulk
	}
	w.started = true
	now := time.Now()
	if lane == w.fresh {
		if w.awaited == nil {
			w.awaited = map[string]time.Time{}
		}
		for name, at := range w.awaited {
			if now.Sub(at) > awaitedTTL {
				delete(w.awaited, name)
			}
		}
		for _, name := range fresh {
			w.awaited[name] = now
		}
	}
	for _, name := range fresh {
		lane.Add(name)
	}
}

// sameDiffInputs reports whether the last diff had these inputs.
func (w *shadowWriter) sameDiffInputs(gen uint64, actual []*corev1.Service, actualGen uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.diffedGen != gen || w.diffedActualGen != actualGen || len(w.diffedActual) != len(actual) {
		return false
	}
	for _, a := range actual {
		if _, ok := w.diffedActual[a]; !ok {
			return false
		}
	}
	return true
}

// freshYieldMax bounds how long a bulk write waits for the fresh lane, so
// a steady stream of new Services cannot stall a backlog.
const freshYieldMax = time.Second

// yieldToFresh holds a bulk write back while the fresh lane has work, up to
// freshYieldMax. The apiserver serves writes in parallel, and during a
// cold start of 3,000 services each Service create cost it time in
// proportion to the Services already there (docs/controller.md): a fresh
// write queued behind the bulk lane's writers waited for all of them. A
// workqueue signals no one when it empties, hence the short poll.
func (w *shadowWriter) yieldToFresh(ctx context.Context) {
	deadline := time.Now().Add(freshYieldMax)
	for (w.fresh.Len() > 0 || w.freshActive.Load() > 0) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// processNext handles one key of q; false when q is shut down.
func (w *shadowWriter) processNext(ctx context.Context, q workqueue.TypedRateLimitingInterface[string]) bool {
	name, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(name)
	if q == w.fresh {
		w.freshActive.Add(1)
		defer w.freshActive.Add(-1)
	} else {
		w.yieldToFresh(ctx)
	}
	w.mu.Lock()
	w.writing[name] = true
	w.mu.Unlock()
	err := w.sync(ctx, name)
	if err != nil {
		utilruntime.HandleError(fmt.Errorf("shadow service %s/%s: %w", w.ns, name, err))
	}
	if _, drained := w.requeue(ctx, q, name, err == nil); drained {
		klog.Infof("shadow services: every write done (%v writes so far)", w.c.metrics.writesTotal.Load())
	}
	return true
}

// requeue ends a worker's sync of name and reports whether the name went
// back to q: after a failed sync (rate limited), or when a diff found it
// different during the sync, which may have read the lister before that
// change. q still holds name as in progress, so Add makes the workqueue
// hand it out again once the worker is done with it. Without this, a
// shadow deleted while its worker synced it stayed deleted: the diff that
// saw the deletion skipped the name as already pending. Otherwise the name
// is no longer pending, and drained says whether it was the last one. One
// critical section decides both, so that no diff can find the name
// pending but no longer being written, and skip it.
func (w *shadowWriter) requeue(ctx context.Context, q workqueue.TypedRateLimitingInterface[string], name string, ok bool) (requeued, drained bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	again := w.again[name]
	delete(w.writing, name)
	delete(w.again, name)
	switch {
	case !ok:
		if ctx.Err() == nil {
			q.AddRateLimited(name)
		}
	case again:
		q.Add(name)
	default:
		q.Forget(name)
		delete(w.pending, name)
		return false, len(w.pending) == 0
	}
	return true, false
}

// sync makes the shadow Service name match the latest desired state.
func (w *shadowWriter) sync(ctx context.Context, name string) error {
	w.c.mu.Lock()
	desired := w.c.desired.service(name)
	w.c.mu.Unlock()
	actual, err := w.lister.Services(w.ns).Get(name)
	if apierrors.IsNotFound(err) {
		actual = nil
	} else if err != nil {
		return err
	}
	switch {
	case desired == nil && actual != nil:
		w.mu.Lock()
		delete(w.seenIPs, name)
		w.mu.Unlock()
		uid := actual.UID
		err := w.kube.CoreV1().Services(w.ns).Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		w.c.metrics.wrote("delete")
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	case desired == nil:
		return nil
	case actual == nil:
		err := w.create(ctx, desired)
		if apierrors.IsAlreadyExists(err) {
			return w.adopt(ctx, desired)
		}
		return err
	case shadow.NeedsUpdate(desired, actual):
		_, err := w.kube.CoreV1().Services(w.ns).Update(ctx, shadow.Merge(desired, actual), metav1.UpdateOptions{FieldManager: fieldManager})
		w.c.metrics.wrote("update")
		return err
	}
	return nil
}

// ipAttempts is how many chosen ClusterIPs a create tries before it lets
// the apiserver allocate one.
const ipAttempts = 3

// create creates the shadow desired. With a picker, it names the ClusterIP
// (the picker's first address for the name, then the next attempts' if the
// address is taken), else the apiserver allocates one.
func (w *shadowWriter) create(ctx context.Context, desired *corev1.Service) error {
	if w.ips != nil {
		svc := desired.DeepCopy()
		for attempt := range ipAttempts {
			ip := w.ips.Pick(desired.Name, attempt).String()
			svc.Spec.ClusterIP, svc.Spec.ClusterIPs = ip, []string{ip}
			err := w.createOne(ctx, svc)
			if attempt == 0 && clusterIPRejected(err) && w.hadIP(desired.Name, ip) {
				err = w.awaitOwnIP(ctx, svc, err)
			}
			if !clusterIPRejected(err) {
				return err
			}
			klog.V(2).Infof("shadow %s: ClusterIP %s: %v", desired.Name, ip, err)
		}
	}
	return w.createOne(ctx, desired)
}

// ownIPWait bounds how long a shadow re-created after a deletion waits for
// the ClusterIP it had, polling every ownIPPoll. The apiserver releases a
// deleted Service's address after the deletion's watch event, which is
// what makes the controller re-create the shadow: measured in the
// integration test, the first create could still find the address taken.
const (
	ownIPWait = 2 * time.Second
	ownIPPoll = 50 * time.Millisecond
)

// hadIP reports whether the shadow name was last seen with ClusterIP ip.
func (w *shadowWriter) hadIP(name, ip string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seenIPs[name] == ip
}

// awaitOwnIP creates svc, whose ClusterIP is the one its deleted
// predecessor had, until the address is free again or ownIPWait has
// passed; it returns the last create's error (err, the first one's, when
// ctx ends before another).
func (w *shadowWriter) awaitOwnIP(ctx context.Context, svc *corev1.Service, err error) error {
	_ = wait.PollUntilContextTimeout(ctx, ownIPPoll, ownIPWait, false, func(ctx context.Context) (bool, error) {
		err = w.createOne(ctx, svc)
		return !clusterIPRejected(err), nil
	})
	return err
}

// createOne sends one create of svc and counts it.
func (w *shadowWriter) createOne(ctx context.Context, svc *corev1.Service) error {
	created, err := w.kube.CoreV1().Services(w.ns).Create(ctx, svc, metav1.CreateOptions{FieldManager: fieldManager})
	w.c.metrics.wrote("create")
	if err == nil {
		w.mu.Lock()
		w.seeIPLocked(created)
		w.mu.Unlock()
	}
	return err
}

// seeIPLocked notes the ClusterIP shadow s has, if any, in seenIPs. w.mu
// is held.
func (w *shadowWriter) seeIPLocked(s *corev1.Service) {
	if ip := s.Spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone {
		w.seenIPs[s.Name] = ip
	}
}

// clusterIPRejected reports whether a create failed on the ClusterIP it
// named: taken, or outside the Service CIDR.
func clusterIPRejected(err error) bool {
	var status apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) || status.Status().Details == nil {
		return false
	}
	for _, c := range status.Status().Details.Causes {
		if c.Field == "spec.clusterIP" || c.Field == "spec.clusterIPs" || strings.HasPrefix(c.Field, "spec.clusterIPs[") {
			return true
		}
	}
	return false
}

// servicePicker returns the ClusterIP picker of the cluster's default
// Service CIDR (the ServiceCIDR object "kubernetes", from kube-apiserver's
// --service-cluster-ip-range, GA in Kubernetes 1.33), or nil and why not:
// then shadows take dynamic ClusterIPs, as they did before.
func servicePicker(ctx context.Context, kube kubernetes.Interface) (*shadow.IPPicker, error) {
	sc, err := kube.NetworkingV1().ServiceCIDRs().Get(ctx, defaultServiceCIDR, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if len(sc.Spec.CIDRs) == 0 {
		return nil, fmt.Errorf("ServiceCIDR %s lists no CIDR", defaultServiceCIDR)
	}
	// The first is the primary family's, which a single-stack Service
	// such as a shadow gets.
	return shadow.NewIPPicker(sc.Spec.CIDRs[0])
}

// defaultServiceCIDR names the ServiceCIDR kube-apiserver makes from its
// flags.
const defaultServiceCIDR = "kubernetes"

// adopt handles a create that found the name taken although the lister had
// no such shadow: either the lister lags behind our own create, or a Service
// without our labels holds the name (the mesh namespace is nodemesh's, so it
// is taken over). This is the one live read outside the informers; it
// happens only on that race.
func (w *shadowWriter) adopt(ctx context.Context, desired *corev1.Service) error {
	live, err := w.kube.CoreV1().Services(w.ns).Get(ctx, desired.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if !shadow.NeedsUpdate(desired, live) {
		return nil
	}
	_, err = w.kube.CoreV1().Services(w.ns).Update(ctx, shadow.Merge(desired, live), metav1.UpdateOptions{FieldManager: fieldManager})
	w.c.metrics.wrote("update")
	return err
}

// fieldManager names nodemesh in managedFields.
const fieldManager = "nodemesh-controller"

// backlog is the number of shadow writes not yet done.
func (w *shadowWriter) backlog() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}
