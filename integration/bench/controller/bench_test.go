package controllerbench

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	splitclient "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/split/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodemesh/nodemesh/integration/harness"
	"github.com/nodemesh/nodemesh/pkg/distribution"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// result is what one size measured.
type result struct {
	N                         int
	Populate                  time.Duration
	Ready, AllShadows         time.Duration
	LateBacklog               int // shadows still missing when the first late Service was created
	LateShadow                time.Duration
	LateBacklogLast           int           // the same for the last late Service
	LateP50, LateP95, LateMax time.Duration // late Services: created -> routable with their shadow
	EditP50, EditP95, EditMax time.Duration
	ProxyP50, ProxyP99        time.Duration
	NewP50, NewP95            time.Duration
	ShadowP50, ShadowP95      time.Duration // new Service -> its route carries its shadow's ClusterIP
	EditBuilds                float64       // rebuilds the controller ran during the edits
	EditBuildMean             time.Duration // their mean duration (its own histogram)
	EditCPU                   time.Duration // controller CPU per edit
	EditGCs                   float64       // the controller's GC cycles during the edits
	RSS                       float64
	HeapInuse                 float64
	LoadBefore, LoadAfter     string // /proc/loadavg's 1-minute figure
	EditMisses, ProxyMisses   int    // edits not seen within editTimeout
	CPUToSteady               time.Duration
	RestartWrites             float64
	RestartChanged            int // shadows whose resourceVersion changed across the restart
	RestartSettled            time.Duration
	TableBytes                int
	Shadows                   int
}

func TestControllerBench(t *testing.T) {
	if !*run {
		t.Skip("the controller benchmark runs from integration/bench/controller/run.sh (-bench)")
	}
	bin := os.Getenv("NODEMESH_BIN")
	if bin == "" {
		t.Fatal("NODEMESH_BIN is not set")
	}
	var results []result
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 10 {
			t.Fatalf("bad size %q", s)
		}
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			r := measure(t, bin, n)
			t.Logf("%+v", r)
			results = append(results, r)
		})
	}
	report := render(results)
	t.Log("\n" + report)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// measure runs one size on a fresh cluster.
func measure(t *testing.T, bin string, n int) (r result) {
	r = result{N: n, LoadBefore: loadAvg()}
	defer func() { r.LoadAfter = loadAvg() }()
	ctx := t.Context()
	var opts []harness.Option
	if *apiProfile != "" {
		opts = append(opts, harness.WithAPIServerArgs("--profiling=true"))
	}
	c := harness.Start(t, opts...)
	rc := c.RESTConfig()
	rc.QPS, rc.Burst = 2000, 4000
	kube := kubernetes.NewForConfigOrDie(rc)
	split := splitclient.NewForConfigOrDie(rc)
	installCRDs(t, c)
	for _, ns := range []string{"nodemesh", benchNS} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	nodes := []string{}
	for i := range *reader {
		nodes = append(nodes, c.AddNode(t, fmt.Sprintf("node-%02d", i)).Name)
	}
	waitForServiceAccount(t, kube)

	t.Logf("populating %d services, %d pods, %d splits", n, n*podsPerService, n/10)
	began := time.Now()
	p := newPopulator(kube, split, nodes)
	if err := parallel(0, n, 32, func(i int) error { return p.service(ctx, i) }); err != nil {
		t.Fatal(err)
	}
	if err := parallel(0, n/10, 16, func(k int) error { return p.trafficSplit(ctx, k*10, n) }); err != nil {
		t.Fatal(err)
	}
	r.Populate = time.Since(began)
	t.Logf("populated in %s", r.Populate.Round(time.Millisecond))

	shadows := watchShadows(ctx, kube)
	want := n + 1                     // every bench service and default/kubernetes
	logDir := os.Getenv("BENCH_LOGS") // kept for reading; else removed with the test
	if logDir == "" {
		logDir = t.TempDir()
	}
	port := freePort(t)
	ctrl := startControllerProc(t, bin, c.Kubeconfig(), port, logDir, "controller")
	profileAPIServer(ctx, t, kube)
	r.Ready = ctrl.ready(t, 2*time.Minute).Sub(ctrl.started)

	// Services created one after another while the shadow backlog is being
	// written: when each is routable through the mesh with its shadow (its
	// ClusterIP in the served table), and when the first one's shadow exists.
	servedW := watchServed(ctx, ctrl.url)
	if _, ok := shadows.nth(1, time.Minute); !ok {
		t.Fatal("no shadow service appeared within a minute")
	}
	var late []time.Duration
	for k := range lateServices {
		i := n + lateOffset + k
		eps, err := p.pods(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		backlog := want - shadows.count()
		at := time.Now()
		if err := p.serviceWithEndpoints(ctx, i, eps); err != nil {
			t.Fatal(err)
		}
		want++
		if k == 0 {
			r.LateBacklog = backlog
			if shadowAt, ok := shadows.when(svcName(i)+"--"+benchNS, 5*time.Minute); ok {
				r.LateShadow = shadowAt.Sub(at)
			}
		}
		r.LateBacklogLast = backlog
		s, ok := servedW.first(at, 2*time.Minute, func(t *table.Table) bool { return hasIPHost(t, svcName(i)) })
		if !ok {
			t.Fatalf("late service %s not routable with its shadow within 2 minutes", svcName(i))
		}
		late = append(late, s.at.Sub(at))
	}
	r.LateP50, r.LateP95, r.LateMax = percentile(late, 50), percentile(late, 95), percentile(late, 100)
	last, ok := shadows.nth(want, 10*time.Minute)
	if !ok {
		t.Fatalf("only %d of %d shadows after 10 minutes", shadows.count(), want)
	}
	r.AllShadows = last.Sub(ctrl.started)
	r.Shadows = shadows.count()

	if _, ok := servedW.first(time.Time{}, 30*time.Second, func(*table.Table) bool { return true }); !ok {
		t.Fatal("no table served")
	}
	proxies := startProxies(ctx, t, ctrl.url, nodes)
	time.Sleep(2 * time.Second) // let the proxies fetch the current table
	r.CPUToSteady = ctrl.cpu()
	// The steady-state phases (edits, new Services, the RSS reading) start
	// after the controller's start-up trim, so they all see the same
	// process: on a fast run the RSS was otherwise read just after the
	// trim, before the pages the controller runs had come back.
	if wait := time.Until(ctrl.started.Add(controllerTrimDelay + 5*time.Second)); wait > 0 {
		t.Logf("waiting %s for the controller's start-up trim", wait.Round(time.Second))
		time.Sleep(wait)
	}

	t.Logf("measuring %d split weight edits", *edits)
	buildSum0, builds0, cpu0 := ctrl.metric(buildMetric+"_sum"), ctrl.metric(buildMetric+"_count"), ctrl.cpu()
	gcs0 := ctrl.metric(gcMetric)
	cpuProfile := profileController(ctx, t, ctrl, "/debug/pprof/profile?seconds=10", fmt.Sprintf("controller-edits-%d.pprof", n))
	var served, applied []time.Duration
	for k := range *edits {
		i := (k * 10) % n
		w := int32(1 + k%97)
		if w == 80 {
			w = 81
		}
		ts, err := split.SplitV1alpha4().TrafficSplits(benchNS).Get(ctx, svcName(i), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ts.Spec.Backends = []splitv1alpha4.TrafficSplitBackend{{Service: svcName((i + 1) % n), Weight: int(w)}, {Service: svcName((i + 2) % n), Weight: int(100 - w)}}
		check := func(t *table.Table) bool { return routeWeights(t, svcName(i))[svcName((i+1)%n)] == w }
		proxies.expect(check)
		start := time.Now()
		if _, err := split.SplitV1alpha4().TrafficSplits(benchNS).Update(ctx, ts, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		// A miss counts as the whole wait (pessimistic) and is reported.
		s, ok := servedW.first(start, editTimeout, check)
		if !ok {
			last := servedW.latest()
			t.Logf("edit %d of %s not served within %s; latest served version %d at %s has weights %v",
				k, svcName(i), editTimeout, last.table.Version, last.at.Format(time.StampMilli), routeWeights(last.table, svcName(i)))
			r.EditMisses++
			s.at = start.Add(editTimeout)
		}
		served = append(served, s.at.Sub(start))
		if at, ok := proxies.wait(editTimeout); ok {
			applied = append(applied, at.Sub(start))
		} else {
			r.ProxyMisses++
			applied = append(applied, editTimeout)
		}
	}
	r.EditP50, r.EditP95, r.EditMax = percentile(served, 50), percentile(served, 95), percentile(served, 100)
	r.EditBuilds = ctrl.metric(buildMetric+"_count") - builds0
	if r.EditBuilds > 0 {
		r.EditBuildMean = time.Duration((ctrl.metric(buildMetric+"_sum") - buildSum0) / r.EditBuilds * float64(time.Second))
	}
	r.EditCPU = (ctrl.cpu() - cpu0) / time.Duration(max(*edits, 1))
	r.EditGCs = ctrl.metric(gcMetric) - gcs0
	<-cpuProfile
	r.ProxyP50, r.ProxyP99 = percentile(applied, 50), percentile(applied, 99)

	t.Log("measuring new services")
	var fresh, routable []time.Duration
	for k := range 20 {
		i := n + 1 + k
		eps, err := p.pods(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := p.serviceWithEndpoints(ctx, i, eps); err != nil {
			t.Fatal(err)
		}
		s, ok := servedW.first(start, 10*time.Second, func(t *table.Table) bool {
			w := routeWeights(t, svcName(i))
			return w != nil && len(w) == 1
		})
		if !ok {
			t.Fatalf("new service %d never served", i)
		}
		fresh = append(fresh, s.at.Sub(start))
		// Routable through the mesh includes the shadow Service: its
		// ClusterIP among the route's hosts.
		s, ok = servedW.first(start, 10*time.Second, func(t *table.Table) bool { return hasIPHost(t, svcName(i)) })
		if !ok {
			t.Fatalf("new service %d never served with its shadow's ClusterIP", i)
		}
		routable = append(routable, s.at.Sub(start))
	}
	r.NewP50, r.NewP95 = percentile(fresh, 50), percentile(fresh, 95)
	r.ShadowP50, r.ShadowP95 = percentile(routable, 50), percentile(routable, 95)
	r.TableBytes = wholeSize(ctx, ctrl.url)
	time.Sleep(2 * time.Second)
	r.RSS = ctrl.rssMiB()
	snapshotControllerMemory(ctx, t, ctrl, logDir, n)
	r.HeapInuse = ctrl.metric("go_memstats_heap_inuse_bytes") / (1 << 20)
	<-profileController(ctx, t, ctrl, "/debug/pprof/heap", fmt.Sprintf("controller-heap-%d.pprof", n))

	t.Log("restarting with nothing changed")
	waitSettled(t, ctrl)
	before, err := shadowVersions(ctx, kube)
	if err != nil {
		t.Fatal(err)
	}
	ctrl.stop()
	again := startControllerProc(t, bin, c.Kubeconfig(), port, logDir, "controller-restarted")
	again.ready(t, 2*time.Minute)
	waitSettled(t, again)
	r.RestartSettled = time.Since(again.started)
	time.Sleep(3 * time.Second)
	for _, verb := range []string{"create", "update", "delete"} {
		r.RestartWrites += again.metric(`nodemesh_controller_shadow_writes_total{verb="` + verb + `"}`)
	}
	after, err := shadowVersions(ctx, kube)
	if err != nil {
		t.Fatal(err)
	}
	for name, rv := range before {
		if after[name] != rv {
			r.RestartChanged++
		}
	}
	if !maps.Equal(before, after) && r.RestartChanged == 0 {
		r.RestartChanged = len(after) - len(before)
	}
	return r
}

// controllerTrimDelay is when `nodemesh controller` drops its start-up
// pages (cmd/nodemesh/controller.go, --trim-startup-pages).
const controllerTrimDelay = 20 * time.Second

// buildMetric is the controller's rebuild duration histogram; gcMetric
// counts its completed GC cycles.
const (
	buildMetric = "nodemesh_controller_build_duration_seconds"
	gcMetric    = "go_gc_duration_seconds_count"
)

// lateServices are created during the cold-start backlog, one after
// another; their names start lateOffset after the populated ones (the new
// Services measured later take the 20 names right after those).
const (
	lateServices = 10
	lateOffset   = 100
)

// editTimeout bounds the wait for one edit to be served or applied.
const editTimeout = 30 * time.Second

// waitSettled waits until the controller leads and has no shadow backlog.
func waitSettled(t *testing.T, p *controllerProc) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if leading, backlog := p.readiness(); leading && backlog == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the controller did not settle")
}

// loadAvg is the machine's 1-minute load average: other work on the same
// 2 cores inflates every wall-clock figure.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

func waitForServiceAccount(t *testing.T, kube kubernetes.Interface) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if _, err := kube.CoreV1().ServiceAccounts(benchNS).Get(t.Context(), "default", metav1.GetOptions{}); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no default ServiceAccount in the bench namespace")
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// proxyFleet is distribution clients standing in for node proxies; each
// reads every version as a proxy does (the whole table, then deltas).
type proxyFleet struct {
	mu      sync.Mutex
	check   func(*table.Table) bool
	applied map[string]time.Time
	n       int
	done    chan struct{}
}

func startProxies(ctx context.Context, t *testing.T, url string, nodes []string) *proxyFleet {
	f := &proxyFleet{n: len(nodes)}
	for _, node := range nodes {
		cl, err := distribution.NewClient(distribution.ClientOptions{URL: url, Node: node})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			_ = cl.Run(ctx, func(tb *table.Table) error {
				now := time.Now()
				f.mu.Lock()
				defer f.mu.Unlock()
				if f.check != nil && f.applied[node].IsZero() && f.check(tb) {
					f.applied[node] = now
					if len(f.applied) == f.n {
						close(f.done)
					}
				}
				return nil
			})
		}()
	}
	return f
}

// expect arms the fleet for the next edit.
func (f *proxyFleet) expect(check func(*table.Table) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.check, f.applied, f.done = check, map[string]time.Time{}, make(chan struct{})
}

// wait returns when the last proxy applied the expected table.
func (f *proxyFleet) wait(timeout time.Duration) (time.Time, bool) {
	f.mu.Lock()
	done := f.done
	f.mu.Unlock()
	select {
	case <-done:
	case <-time.After(timeout):
		return time.Time{}, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var last time.Time
	for _, at := range f.applied {
		if at.After(last) {
			last = at
		}
	}
	return last, true
}
