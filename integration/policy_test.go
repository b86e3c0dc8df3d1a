package integration_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nodemesh/nodemesh/integration/harness"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// TestTrafficPolicy runs the traffic policies of issue 11 through a real
// controller and a real `nodemesh proxy` on node-a, each on a service of its
// own, configured only by Service annotations.
func TestTrafficPolicy(t *testing.T) {
	c := harness.Start(t)
	createNamespaces(t, c, "nodemesh", "pol")
	c.AddNode(t, "node-a")
	c.AddNode(t, "node-b")
	pods := map[string]*harness.Pod{}
	for _, p := range []struct{ name, app, node string }{
		{"slow", "slow", "node-a"},
		{"flaky-a", "flaky", "node-a"}, {"flaky-b", "flaky", "node-a"},
		{"near-a", "near", "node-a"}, {"near-b", "near", "node-b"},
		{"faulty", "faulty", "node-b"},
		{"down-a", "down", "node-a"}, {"down-b", "down", "node-b"},
	} {
		pods[p.name] = c.StartPod(t, harness.PodSpec{Namespace: "pol", Name: p.name, Node: p.node, Labels: map[string]string{"app": p.app}})
	}
	for app, annotations := range map[string]map[string]string{
		"slow":  {"nodemesh.io/request-timeout": "1s"},
		"flaky": {"nodemesh.io/outlier-consecutive-errors": "3", "nodemesh.io/outlier-base-ejection-time": "3s", "nodemesh.io/outlier-max-ejection-percent": "50"},
		"near": {"nodemesh.io/locality": "node", "nodemesh.io/retry-attempts": "3",
			"nodemesh.io/outlier-consecutive-errors": "2", "nodemesh.io/outlier-max-ejection-percent": "50"},
		"faulty": {"nodemesh.io/fault-abort-percent": "10", "nodemesh.io/fault-abort-status": "503"},
		"down":   {"nodemesh.io/retry-attempts": "3"}, // the retry budget is 20% by default
		// A bad value next to good ones (no pod: the fault answers first).
		"mixed": {"nodemesh.io/request-timeout": "soon", "nodemesh.io/fault-abort-percent": "100", "nodemesh.io/fault-abort-status": "418"},
	} {
		createService(t, c, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "pol", Name: app, Annotations: annotations},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": app},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
		})
	}
	ctrl := startController(t, c, nil)
	proxy := startProxy(t, "node-a", ctrl.URL)
	for svc, want := range map[string]int{"slow": 1, "flaky": 2, "near": 2, "faulty": 1, "down": 2} {
		waitUntil(t, settle, fmt.Sprintf("%d endpoints of %s in the proxy's table", want, svc), func() bool {
			return endpointsInProxy(t, proxy, svc) == want && send(svc, "/").code == 200
		})
	}

	t.Run("a bad value is an error naming its key, on that service only; the rest of its policy applies", func(t *testing.T) {
		const want = `annotation nodemesh.io/request-timeout="soon": want a Go duration`
		waitUntil(t, settle, "the error in the status API", func() bool {
			var st struct {
				Errors []struct{ Kind, Namespace, Name, Message string }
			}
			resp, err := plainHTTP.Get(ctrl.URL + "/api/status/errors")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			if json.NewDecoder(resp.Body).Decode(&st) != nil {
				return false
			}
			for _, e := range st.Errors {
				if e.Name != "mixed" && e.Namespace == "pol" {
					t.Fatalf("an error on another service: %+v", e)
				}
				if e.Kind == "Service" && e.Name == "mixed" && strings.HasPrefix(e.Message, want) {
					return true
				}
			}
			return false
		})
		waitUntil(t, settle, "a Warning event on the Service", func() bool {
			evs, err := c.Client().CoreV1().Events("pol").List(t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.name=mixed"})
			if err != nil {
				return false
			}
			for _, e := range evs.Items {
				if e.Type == corev1.EventTypeWarning && strings.HasPrefix(e.Message, want) {
					return true
				}
			}
			return false
		})
		waitUntil(t, settle, "the good keys to apply", func() bool {
			r := send("mixed", "/")
			return r.code == 418 && r.fault == "abort"
		})
	})

	t.Run("request timeout: 504 at the configured 1s, within 10%, over 200 requests", func(t *testing.T) {
		results := sendMany(200, 20, "slow", "/?delay=3s")
		var took []time.Duration
		for _, r := range results {
			if r.err != nil || r.code != 504 || !strings.Contains(r.body, "request timeout 1s exceeded for pol/slow") {
				t.Fatalf("got %d %q (%v), want 504 naming the timeout", r.code, r.body, r.err)
			}
			took = append(took, r.took)
		}
		slices.Sort(took)
		t.Logf("504 after min %v, median %v, p99 %v, max %v", took[0], took[100], took[197], took[199])
		if took[0] < 900*time.Millisecond || took[199] > 1100*time.Millisecond {
			t.Errorf("504 times from %v to %v, want all within 1s ± 10%%", took[0], took[199])
		}
	})

	t.Run("outlier detection: a failing pod is ejected after 3 errors and returns later", func(t *testing.T) {
		var failing atomic.Bool
		failing.Store(true)
		impostor := replacePod(t, pods["flaky-b"], func(w http.ResponseWriter, _ *http.Request) {
			if failing.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			_ = json.NewEncoder(w).Encode(harness.WhoAmI{Pod: "flaky-b"})
		})
		errors, fromB := 0, 0
		for range 100 {
			r := send("flaky", "/")
			switch {
			case r.err != nil:
				t.Fatal(r.err)
			case r.code != 200:
				errors++
			case r.pod == "flaky-b":
				fromB++
			}
		}
		t.Logf("100 requests: %d errors, %d answered by the failing pod (%d requests reached it)", errors, fromB, impostor.Load())
		if errors != 3 || impostor.Load() != 3 {
			t.Fatalf("clients saw %d errors and the failing pod %d requests, want 3 and 3", errors, impostor.Load())
		}
		if n := proxyMetric(t, proxy, `nodemesh_proxy_http_outlier_ejections_total{namespace="pol",service="flaky"}`); n != 1 {
			t.Errorf("ejections_total = %v, want 1", n)
		}
		if st := proxyState(t, proxy); !strings.Contains(st, `"ejected":true`) {
			t.Errorf("/config?state does not show the ejection: %s", st)
		}
		failing.Store(false) // the pod recovers; after the 3s ejection it is back
		start := time.Now()
		waitUntil(t, 10*time.Second, "the ejected pod to get traffic again", func() bool { return send("flaky", "/").pod == "flaky-b" })
		t.Logf("the recovered pod took traffic again %v later (base ejection time 3s)", time.Since(start).Round(10*time.Millisecond))
	})

	t.Run("locality node: every request to the local pod, then zero failures when it dies", func(t *testing.T) {
		for i := range 200 {
			if r := send("near", "/"); r.err != nil || r.code != 200 || r.pod != "near-a" {
				t.Fatalf("request %d: %d from %q (%v), want near-a on the proxy's node", i, r.code, r.pod, r.err)
			}
		}
		// The local pod's process dies; its endpoint stays ready: only the
		// proxy's retries and ejection can keep clients whole.
		pods["near-a"].Process().Stop()
		for i := range 300 {
			if r := send("near", "/"); r.err != nil || r.code != 200 || r.pod != "near-b" {
				t.Fatalf("request %d after the local pod died: %d from %q (%v), want near-b", i, r.code, r.pod, r.err)
			}
		}
		t.Logf("retries %v, ejections %v", proxyMetric(t, proxy, `nodemesh_proxy_http_retries_total{namespace="pol",service="near"}`),
			proxyMetric(t, proxy, `nodemesh_proxy_http_outlier_ejections_total{namespace="pol",service="near"}`))
	})

	t.Run("fault injection at 10% aborts 10% ± 3 points of 2,000 requests", func(t *testing.T) {
		// Earlier requests (the wait for the route) may have been aborted
		// too, so the metric is compared as a difference.
		before := proxyMetric(t, proxy, `nodemesh_proxy_http_faults_injected_total{fault="abort",namespace="pol",service="faulty"}`)
		aborted := 0
		for _, r := range sendMany(2000, 8, "faulty", "/") {
			switch {
			case r.err != nil:
				t.Fatal(r.err)
			case r.fault == "abort" && r.code == 503:
				aborted++
			case r.code != 200:
				t.Fatalf("a request not aborted got %d %q", r.code, r.body)
			}
		}
		t.Logf("aborted %d of 2,000 (%.1f%%)", aborted, float64(aborted)/20)
		if aborted < 140 || aborted > 260 {
			t.Errorf("aborted %d of 2,000, want 200 ± 60", aborted)
		}
		if n := proxyMetric(t, proxy, `nodemesh_proxy_http_faults_injected_total{fault="abort",namespace="pol",service="faulty"}`) - before; int(n) != aborted {
			t.Errorf("faults_injected_total rose by %v, want %d", n, aborted)
		}
	})

	t.Run("the retry budget holds under a 100% backend failure", func(t *testing.T) {
		pods["down-a"].Process().Stop()
		pods["down-b"].Process().Stop()
		before := proxyMetric(t, proxy, `nodemesh_proxy_http_retries_total{namespace="pol",service="down"}`)
		const n = 1000
		start := time.Now()
		for range n {
			if r := send("down", "/"); r.err != nil || r.code != 502 {
				t.Fatalf("got %d (%v), want 502 from dead pods", r.code, r.err)
			}
		}
		took := time.Since(start)
		retries := proxyMetric(t, proxy, `nodemesh_proxy_http_retries_total{namespace="pol",service="down"}`) - before
		refused := proxyMetric(t, proxy, `nodemesh_proxy_http_retry_budget_exhausted_total{namespace="pol",service="down"}`)
		// Every request the service ever had, the few of the setup
		// included: the budget may count them if they are recent.
		total := proxyMetric(t, proxy, `nodemesh_proxy_http_requests_total{code="200",method="GET",namespace="pol",service="down"}`) +
			proxyMetric(t, proxy, `nodemesh_proxy_http_requests_total{code="502",method="GET",namespace="pol",service="down"}`)
		t.Logf("%d requests in %v: %v retries (%.1f%%), %v refused by the budget; without it there would be %d", n, took.Round(time.Millisecond), retries, retries/n*100, refused, 2*n)
		if took > 10*time.Second {
			t.Fatalf("the run outlasted the 10s budget window (%v); the check below assumes one window", took)
		}
		if retries > 0.2*total || retries < 0.15*n {
			t.Errorf("%v retries for %d requests (%v in all), want at most 20%% (and close to it)", retries, n, total)
		}
	})
}

// result is one request through the proxy.
type result struct {
	code             int
	pod, body, fault string
	took             time.Duration
	err              error
}

// send GETs path of service.pol.mesh through the proxy on node-a.
func send(service, path string) result {
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", proxyHTTPPort, path), nil)
	if err != nil {
		return result{err: err}
	}
	req.Host = service + ".pol.mesh"
	start := time.Now()
	resp, err := policyClient.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	r := result{code: resp.StatusCode, body: string(body), fault: resp.Header.Get("X-Nodemesh-Fault"), took: time.Since(start), err: err}
	if resp.StatusCode == 200 {
		if who, err := decodeWhoAmI(body); err == nil {
			r.pod = who.Pod
		}
	}
	return r
}

// policyClient keeps enough connections alive for the concurrent runs.
var policyClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 32}}

// sendMany sends n requests from workers goroutines.
func sendMany(n, workers int, service, path string) []result {
	out := make([]result, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				out[i] = send(service, path)
			}
		}()
	}
	wg.Wait()
	return out
}

// replacePod stops pod's process, leaving its Pod Ready, and serves its HTTP
// port from this test with h instead. It returns the count of requests h got.
func replacePod(t *testing.T, pod *harness.Pod, h http.HandlerFunc) *atomic.Int64 {
	t.Helper()
	pod.Process().Stop()
	ln, err := net.Listen("tcp", pod.AddrPort("http").String())
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1); h(w, r) }), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &hits
}

// proxyMetric reads one sample of the proxy's /metrics, 0 when absent.
func proxyMetric(t *testing.T, p *proxyProcess, series string) float64 {
	t.Helper()
	return metricSample(t, plainHTTP, p.admin+"/metrics", series)
}

// endpointsInProxy counts the endpoints of pol/<service>'s route in the
// table the proxy applied.
func endpointsInProxy(t *testing.T, p *proxyProcess, service string) int {
	t.Helper()
	resp, err := plainHTTP.Get(p.admin + "/config")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	tb, err := table.Decode(b)
	if err != nil {
		return -1
	}
	n := 0
	for _, r := range tb.HTTP {
		if r.Service == (table.ServiceRef{Namespace: "pol", Name: service}) {
			for _, be := range r.Backends {
				n += len(be.Endpoints)
			}
		}
	}
	return n
}

// proxyState returns the proxy's /config?state.
func proxyState(t *testing.T, p *proxyProcess) string {
	t.Helper()
	resp, err := plainHTTP.Get(p.admin + "/config?state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
