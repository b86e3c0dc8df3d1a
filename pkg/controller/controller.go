// Package controller is `nodemesh controller`: it watches Services,
// EndpointSlices, Pods, Nodes, shadow Services and the SMI objects with
// shared informers, builds the routing table, serves it to the node proxies,
// and keeps one shadow Service per mesh service.
//
// The file reads top to bottom like client-go's sample-controller:
//
//  1. informers feed handlers (informers.go), which only enqueue;
//  2. one rebuild worker drains the single "rebuild" key: snapshot from the
//     listers (snapshot.go) -> topology.Build -> routing.Build ->
//     distribution.Server.Publish. A burst of events while a rebuild runs
//     coalesces into one more rebuild, because the workqueue holds each key
//     once;
//  3. the rebuild compares the desired shadow Services with the lister and
//     enqueues the name of each that differs; several shadow workers write
//     them (shadows.go), only on the leader.
//
// Every replica builds and serves the table (building is pure and
// deterministic, so replicas serve identical tables); only the elected
// leader writes shadow Services and emits Events (leader.go).
package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	accessclient "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/access/clientset/versioned"
	specsclient "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/specs/clientset/versioned"
	splitclient "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/split/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/nodemesh/nodemesh/pkg/distribution"
	"github.com/nodemesh/nodemesh/pkg/routing"
	"github.com/nodemesh/nodemesh/pkg/smidiscovery"
	"github.com/nodemesh/nodemesh/pkg/snapshot"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

// rebuildKey is the only key of the rebuild queue: the whole table is one
// unit of work.
const rebuildKey = "rebuild"

// The least time between two rebuilds asked for by shadow Service events
// (see throttle) follows the rebuilds' duration within these bounds: a lone
// event rebuilds at once, a backlog's stream of them once per interval.
// Events of user objects always rebuild at once.
const (
	shadowRebuildMinInterval = 25 * time.Millisecond
	shadowRebuildMaxInterval = 500 * time.Millisecond
)

// Controller is one controller replica.
type Controller struct {
	cfg     Config
	opts    topology.Options
	clients clients
	server  *distribution.Server
	metrics *metrics
	events  *eventReporter
	dns     *dnsKeeper // nil unless PatchDNS

	// Set by Run before the workers start.
	src *sources

	// The builders keep what a rebuild can reuse from the previous one; only
	// the rebuild worker uses them.
	topoBuilder  topology.Builder
	routeBuilder routing.Builder

	rebuilds    workqueue.TypedRateLimitingInterface[string]
	shadowKicks *throttle                    // spaces out the rebuilds of shadow events
	writer      atomic.Pointer[shadowWriter] // nil unless leading

	leader   leaderState
	topo     atomic.Pointer[topology.Topology]
	synced   atomic.Bool
	smi      atomic.Pointer[smidiscovery.Result] // nil until the first discovery
	addr     atomic.Pointer[net.TCPAddr]
	listened chan struct{}

	mu      sync.Mutex
	desired *desiredState // from the latest build; read by shadow workers
}

// New checks cfg and makes the clients from restConfig, with QPS and Burst
// raised to cfg.KubeQPS and cfg.KubeBurst. Nothing runs until Run.
func New(cfg Config, restConfig *rest.Config) (*Controller, error) {
	opts, err := cfg.TopologyOptions()
	if err != nil {
		return nil, err
	}
	rc := rest.CopyConfig(restConfig)
	rc.QPS, rc.Burst = float32(cfg.KubeQPS), cfg.KubeBurst
	rc.UserAgent = "nodemesh-controller"
	var c clients
	var errs [4]error
	// Built-in kinds travel as protobuf, as they do for kube-controller-
	// manager: informers decode every Service, EndpointSlice and Pod event,
	// and protobuf costs both the apiserver and this process less CPU and
	// garbage than JSON. SMI kinds are CRDs, which the apiserver serves
	// only as JSON.
	kc := rest.CopyConfig(rc)
	kc.ContentType = runtime.ContentTypeProtobuf
	kc.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	c.kube, errs[0] = kubernetes.NewForConfig(kc)
	c.split, errs[1] = splitclient.NewForConfig(rc)
	c.specs, errs[2] = specsclient.NewForConfig(rc)
	c.access, errs[3] = accessclient.NewForConfig(rc)
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("making API clients: %w", err)
	}
	ctrl := newWithClients(cfg, opts, c)
	if cfg.PatchDNS {
		if ctrl.dns, err = newDNSKeeper(cfg, c.kube, ctrl.events.recorder); err != nil {
			return nil, err
		}
	}
	return ctrl, nil
}

// newWithClients makes a Controller on given clients (tests pass fakes).
func newWithClients(cfg Config, opts topology.Options, c clients) *Controller {
	ctrl := &Controller{
		cfg:         cfg,
		opts:        opts,
		clients:     c,
		server:      distribution.NewServer(distribution.ServerOptions{}),
		listened:    make(chan struct{}),
		shadowKicks: newThrottle(shadowRebuildMinInterval, shadowRebuildMaxInterval),
		rebuilds: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "nodemesh-rebuild"}),
	}
	ctrl.metrics = newMetrics(ctrl)
	ctrl.events = newEventReporter(c.kube, ctrl.metrics)
	return ctrl
}

// Run serves the API, discovers SMI, starts the informers, and builds and
// serves tables until ctx ends. With LeaderElect it also campaigns for the
// lease and writes shadow Services while it leads; without, it always
// writes. It returns an error only when the API port cannot be bound; a
// stop (ctx ending) returns nil.
func (c *Controller) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	defer c.rebuilds.ShutDown()
	defer c.events.shutdown()

	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", c.cfg.APIPort))
	if err != nil {
		return fmt.Errorf("controller API: %w", err)
	}
	c.addr.Store(ln.Addr().(*net.TCPAddr))
	close(c.listened)
	api := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = api.Serve(ln) }()
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if api.Shutdown(shutdownCtx) != nil {
			_ = api.Close() // long polls still held: cut them, proxies reconnect
		}
	}()

	smi, err := c.discover(ctx)
	if err != nil {
		return nil // only a stop ends discovery early
	}
	c.smi.Store(&smi)
	klog.Info(smi.Summary())
	c.metrics.setSMI(smi)

	c.src = newSources(c.clients, c.cfg, smi, c.handler)
	c.src.start(ctx.Done())
	if !cache.WaitForNamedCacheSync("nodemesh-controller", ctx.Done(), c.src.synced...) {
		return nil // stopped before the caches synced
	}
	c.synced.Store(true)
	if c.cfg.SMIDiscoveryInterval > 0 {
		go wait.UntilWithContext(ctx, c.rediscoverSMI, c.cfg.SMIDiscoveryInterval)
	}

	go wait.UntilWithContext(ctx, c.runRebuildWorker, time.Second)
	c.rebuilds.Add(rebuildKey)

	if c.cfg.LeaderElect {
		c.campaign(ctx)
	} else {
		go c.lead(ctx)
	}
	<-ctx.Done()
	return nil
}

// discover runs SMI discovery, retrying while the apiserver is unreachable.
func (c *Controller) discover(ctx context.Context) (smidiscovery.Result, error) {
	var res smidiscovery.Result
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(context.Context) (bool, error) {
		var err error
		res, err = smidiscovery.Discover(c.clients.kube.Discovery())
		if err != nil {
			klog.Warningf("SMI discovery: %v (retrying)", err)
			return false, nil
		}
		return true, nil
	})
	return res, err
}

// smiSyncTimeout bounds the wait for the caches of newly discovered SMI
// kinds; past it the switch is retried at the next discovery.
const smiSyncTimeout = time.Minute

// errSMIMovedOn abandons a switch whose discovery result is no longer what
// the apiserver serves.
var errSMIMovedOn = errors.New("SMI discovery changed again while they synced")

// rediscoverSMI runs SMI discovery again and, when the served versions
// changed (CRDs installed, upgraded or removed since the last discovery),
// switches the SMI informers to them and rebuilds, without a restart.
// A failed discovery changes nothing: the next one retries.
func (c *Controller) rediscoverSMI(ctx context.Context) {
	res, err := smidiscovery.Discover(c.clients.kube.Discovery())
	if err != nil {
		klog.V(2).Infof("SMI discovery: %v (the next one retries)", err)
		return
	}
	cur := c.smi.Load() // Run stores the first result before rediscovery starts
	if sameSMI(*cur, res) {
		return
	}
	klog.Infof("SMI discovery changed; switching its informers: %s", res.Summary())
	// The wait for the new caches ends at the timeout, or as soon as
	// discovery finds yet another result: CRDs are installed and deleted
	// one at a time, and a kind whose CRD is going away may still be in
	// discovery while its list already fails, so its cache never syncs.
	// Waiting the whole timeout would hide every later change.
	moved, abandon := context.WithCancelCause(ctx)
	defer abandon(nil)
	syncWait, cancel := context.WithTimeoutCause(moved, smiSyncTimeout, fmt.Errorf("not within %s", smiSyncTimeout))
	defer cancel()
	go func() {
		t := time.NewTicker(c.cfg.SMIDiscoveryInterval)
		defer t.Stop()
		for {
			select {
			case <-syncWait.Done():
				return
			case <-t.C:
				if now, err := smidiscovery.Discover(c.clients.kube.Discovery()); err == nil && !sameSMI(now, res) {
					abandon(errSMIMovedOn)
					return
				}
			}
		}
	}()
	if err := c.src.swapSMI(ctx, syncWait, res); err != nil {
		klog.Warningf("SMI discovery: %v; keeping %s (the next discovery retries)", err, cur.Summary())
		return
	}
	c.smi.Store(&res)
	c.metrics.setSMI(res)
	klog.Info(res.Summary())
	c.rebuilds.Add(rebuildKey)
}

// sameSMI reports whether a and b read the same SMI kinds at the same
// versions.
func sameSMI(a, b smidiscovery.Result) bool {
	return a.Status == b.Status && a.HTTPRouteGroups == b.HTTPRouteGroups &&
		a.TCPRoutes == b.TCPRoutes && a.UDPRoutes == b.UDPRoutes
}

// Addr returns the API's listen address once Run has bound it (useful with
// APIPort 0), waiting for that or for ctx.
func (c *Controller) Addr(ctx context.Context) (*net.TCPAddr, error) {
	select {
	case <-c.listened:
		return c.addr.Load(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Server returns the table distribution server.
func (c *Controller) Server() *distribution.Server { return c.server }

// Topology returns the latest built topology, or nil before the first build.
func (c *Controller) Topology() *topology.Topology { return c.topo.Load() }

// handler returns the informer handler of one kind: count, then enqueue the
// rebuild. It never does work itself.
func (c *Controller) handler(kind string) cache.ResourceEventHandler {
	enqueue := func(event string, obj any) {
		c.metrics.informerEvents.WithLabelValues(kind, event).Inc()
		if kind == kindShadow {
			if d := c.shadowDelay(obj); d > 0 {
				c.rebuilds.AddAfter(rebuildKey, d)
				return
			}
		}
		c.rebuilds.Add(rebuildKey)
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { enqueue("add", obj) },
		UpdateFunc: func(old, cur any) {
			if !relevantUpdate(old, cur) {
				c.metrics.informerEvents.WithLabelValues(kind, "update-ignored").Inc()
				return
			}
			enqueue("update", cur)
		},
		DeleteFunc: func(obj any) { enqueue("delete", obj) },
	}
}

// shadowDelay is how long the rebuild an event of shadow obj asks for
// waits: none for a shadow the fresh lane wrote (a Service someone just
// created waits for it), else what the throttle grants.
func (c *Controller) shadowDelay(obj any) time.Duration {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if o, err := meta.Accessor(obj); err == nil {
		if w := c.writer.Load(); w != nil && w.takeAwaited(o.GetName()) {
			return 0
		}
	}
	return c.shadowKicks.delay()
}

// relevantUpdate filters updates that cannot change the table: resyncs with
// the same resourceVersion, and Pod and Node status churn.
func relevantUpdate(old, cur any) bool {
	switch o := old.(type) {
	case *snapshot.Pod:
		if n, ok := cur.(*snapshot.Pod); ok {
			return podChanged(o, n)
		}
	case *corev1.Node:
		if n, ok := cur.(*corev1.Node); ok {
			return nodeChanged(o, n)
		}
	}
	type versioned interface{ GetResourceVersion() string }
	a, ok1 := old.(versioned)
	b, ok2 := cur.(versioned)
	return !ok1 || !ok2 || a.GetResourceVersion() == "" || a.GetResourceVersion() != b.GetResourceVersion()
}

// runRebuildWorker drains the rebuild queue; there is one such worker.
func (c *Controller) runRebuildWorker(ctx context.Context) {
	for {
		key, quit := c.rebuilds.Get()
		if quit {
			return
		}
		err := c.rebuild()
		if err != nil {
			utilruntime.HandleError(fmt.Errorf("rebuild: %w", err))
			c.rebuilds.AddRateLimited(key)
		} else {
			c.rebuilds.Forget(key)
		}
		c.rebuilds.Done(key)
	}
}

// rebuild builds and publishes the table from the listers, then hands the
// shadow differences to the writer and the object errors to the reporter.
func (c *Controller) rebuild() error {
	began := time.Now()
	snap, err := c.src.snapshot()
	if err != nil {
		return fmt.Errorf("reading the informer caches: %w", err)
	}
	topo := c.topoBuilder.Build(snap, c.opts)
	tbl := c.routeBuilder.Build(topo)
	version := c.server.Publish(tbl)
	c.topo.Store(topo)
	took := time.Since(began)
	c.shadowKicks.follow(took, c.shadowBacklog() > 0)
	c.metrics.observeBuild(took, version, len(topo.Errors))
	klog.V(2).Infof("built table version %d: %d services, %d object errors, in %s", version, len(topo.Services), len(topo.Errors), took)

	c.mu.Lock()
	desired := nextDesired(c.desired, topo)
	c.desired = desired
	c.mu.Unlock()
	if w := c.writer.Load(); w != nil {
		w.enqueueDiff(desired, snap.ShadowServices, c.src.shadowsGen())
		c.events.report(topo, snap)
	}
	if c.dns != nil {
		c.dns.setRules(topo)
	}
	return nil
}

// Ready reports whether the caches have synced and a table is served.
func (c *Controller) Ready() bool {
	return c.synced.Load() && c.server.Version() != 0
}
