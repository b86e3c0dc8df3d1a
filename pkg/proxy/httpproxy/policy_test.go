package httpproxy

import (
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// slowBackend answers after d, or when the client gives up.
func slowBackend(t *testing.T, d time.Duration) string {
	return addr(newBackendFunc(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
		_, _ = w.Write([]byte("slow"))
	}))
}

// statusBackend answers every request with code, counting them.
func statusBackend(t *testing.T, code int, hits *int64, mu *sync.Mutex) string {
	return addr(newBackendFunc(t, func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		*hits++
		mu.Unlock()
		w.WriteHeader(code)
	}))
}

func withMiddleware(r table.HTTPRoute, mw table.Middleware) table.HTTPRoute {
	r.Middleware = mw
	return r
}

func TestRequestTimeout(t *testing.T) {
	tests := []struct {
		name    string
		backend time.Duration
		timeout time.Duration
		retries int
		code    int
		body    string
	}{
		{"a slow backend gets 504 naming the timeout", 2 * time.Second, 100 * time.Millisecond, 0, 504, "request timeout 100ms exceeded for shop/web"},
		{"a timeout is not retried", 2 * time.Second, 100 * time.Millisecond, 3, 504, "request timeout 100ms exceeded"},
		{"a fast backend is untouched", 0, time.Second, 0, 200, "slow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProxy(t, Options{})
			p.apply(t, tableOf(withMiddleware(httpRoute("web", 80, backendOf("web", 1, slowBackend(t, tt.backend))),
				table.Middleware{RequestTimeout: table.Duration(tt.timeout), RetryAttempts: tt.retries})))
			start := time.Now()
			code, body := p.get(t, "web.shop.mesh", "/")
			took := time.Since(start)
			if code != tt.code || !strings.Contains(body, tt.body) {
				t.Fatalf("got %d %q, want %d %q", code, body, tt.code, tt.body)
			}
			if tt.code == 504 && took > tt.timeout+time.Second {
				t.Fatalf("504 after %v, want about %v", took, tt.timeout)
			}
		})
	}
}

func TestMaxRequests(t *testing.T) {
	release := make(chan struct{})
	var arrived sync.WaitGroup
	blocking := addr(newBackendFunc(t, func(w http.ResponseWriter, _ *http.Request) {
		arrived.Done()
		<-release
	}))
	p := newProxy(t, Options{})
	route := withMiddleware(httpRoute("web", 80, backendOf("web", 1, blocking)), table.Middleware{MaxRequests: 2})
	p.apply(t, tableOf(route))

	arrived.Add(2)
	results := make(chan int, 2)
	for range 2 {
		go func() { code, _ := p.get(t, "web.shop.mesh", "/"); results <- code }()
	}
	arrived.Wait()
	// A reload that rebuilds the route (a new endpoint) keeps the count.
	route.Backends = []table.Backend{backendOf("web", 1, blocking, deadAddr(t))}
	p.apply(t, tableOf(route))
	code, body := p.get(t, "web.shop.mesh", "/")
	if code != 503 || !strings.Contains(body, "too many requests in flight for shop/web (max-requests 2)") {
		t.Fatalf("the third request got %d %q, want 503 naming max-requests", code, body)
	}
	if n := testutil.ToFloat64(p.rt.policy.maxRequests.WithLabelValues("shop", "web")); n != 1 {
		t.Fatalf("max_requests_rejected_total = %v, want 1", n)
	}
	close(release)
	for range 2 {
		if c := <-results; c != 200 {
			t.Fatalf("a request under the limit got %d", c)
		}
	}
	// The count drops when the handler chain returns, just after the
	// client has its answer (h1Forwarder.ServeHTTP sends it first).
	deadline := time.Now().Add(2 * time.Second)
	for {
		st := p.rt.PolicyState()
		if len(st) == 1 && st[0].InFlight != nil && *st[0].InFlight == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state after the requests ended: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFaultInjection(t *testing.T) {
	tests := []struct {
		name       string
		faults     table.Faults
		n          int
		wantAborts float64 // expected share
		minTook    time.Duration
	}{
		{"abort every request", table.Faults{AbortPercent: 100, AbortStatus: 418}, 20, 1, 0},
		{"abort 30%", table.Faults{AbortPercent: 30, AbortStatus: 503}, 1000, 0.3, 0},
		{"delay every request", table.Faults{DelayPercent: 100, Delay: table.Duration(50 * time.Millisecond)}, 3, 0, 150 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, "web")
			p := newProxy(t, Options{})
			f := tt.faults
			p.apply(t, tableOf(withMiddleware(httpRoute("web", 80, backendOf("web", 1, addr(b.srv))), table.Middleware{Faults: &f})))
			start := time.Now()
			aborts := 0
			for range tt.n {
				req, _ := http.NewRequest("GET", p.url+"/", nil)
				req.Host = "web.shop.mesh"
				resp, err := testClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.Header.Get(HeaderFault) == "abort" {
					aborts++
					if resp.StatusCode != f.AbortStatus {
						t.Fatalf("aborted with %d, want %d", resp.StatusCode, f.AbortStatus)
					}
				} else if resp.StatusCode != 200 {
					t.Fatalf("a request not aborted got %d", resp.StatusCode)
				}
			}
			share := float64(aborts) / float64(tt.n)
			// 5 standard deviations of a binomial share.
			tol := 5*math.Sqrt(tt.wantAborts*(1-tt.wantAborts)/float64(tt.n)) + 1e-9
			if math.Abs(share-tt.wantAborts) > tol {
				t.Fatalf("aborted %d of %d (%.3f), want %.2f ± %.3f", aborts, tt.n, share, tt.wantAborts, tol)
			}
			if got := testutil.ToFloat64(p.rt.policy.faults.WithLabelValues("shop", "web", "abort")); int(got) != aborts {
				t.Fatalf("faults_injected_total{fault=abort} = %v, want %d", got, aborts)
			}
			if took := time.Since(start); took < tt.minTook {
				t.Fatalf("delayed requests took %v, want at least %v", took, tt.minTook)
			}
			if b.hits.Load() != int64(tt.n-aborts) {
				t.Fatalf("the backend saw %d requests, want %d (aborts never reach it)", b.hits.Load(), tt.n-aborts)
			}
		})
	}
}

func TestRetryBudgetUnderTotalFailure(t *testing.T) {
	tests := []struct {
		name   string
		budget table.RetryBudget
		max    float64 // retries allowed over 200 requests
	}{
		{"20% and no floor", table.RetryBudget{Percent: 20, Window: table.Duration(10 * time.Second)}, 40},
		{"0% with a floor of 1/s over 10s", table.RetryBudget{Percent: 0, MinPerSecond: 1, Window: table.Duration(10 * time.Second)}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProxy(t, Options{})
			b := tt.budget
			p.apply(t, tableOf(withMiddleware(httpRoute("web", 80, backendOf("web", 1, deadAddr(t), deadAddr(t), deadAddr(t))),
				table.Middleware{RetryAttempts: 3, RetryBudget: &b})))
			for range 200 {
				if code, _ := p.get(t, "web.shop.mesh", "/"); code != 502 {
					t.Fatalf("status %d, want 502 from dead endpoints", code)
				}
			}
			retries := testutil.ToFloat64(p.rt.metrics.retries.WithLabelValues("shop", "web"))
			refused := testutil.ToFloat64(p.rt.policy.budgetExhausted.WithLabelValues("shop", "web"))
			if retries > tt.max || retries < tt.max-2 {
				t.Fatalf("%v retries over 200 failing requests, want at most %v (and about that many)", retries, tt.max)
			}
			if retries+refused < 200 {
				t.Fatalf("retries %v + refused %v: every failed first attempt should ask the budget", retries, refused)
			}
		})
	}
}

func TestRetryBudgetWindowSlides(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	b := newRetryBudget(table.RetryBudget{Percent: 50, Window: table.Duration(10 * time.Second)}, nil)
	b.now = func() time.Time { return now }
	for range 10 {
		b.request()
	}
	allowed := 0
	for range 10 {
		if b.allow() {
			allowed++
		}
	}
	if allowed != 5 {
		t.Fatalf("50%% of 10 requests allowed %d retries, want 5", allowed)
	}
	now = now.Add(11 * time.Second) // the window has moved past them
	if b.allow() {
		t.Fatal("a retry was allowed by requests older than the window")
	}
	b.request()
	b.request()
	if !b.allow() || b.allow() {
		t.Fatal("2 new requests at 50% should allow exactly one retry")
	}
}

// outlierRoute serves web from a good and a failing endpoint with outlier
// detection after 3 errors.
func outlierRoute(good, bad string, base time.Duration) table.HTTPRoute {
	return withMiddleware(httpRoute("web", 80, backendOf("web", 1, good, bad)), table.Middleware{Outlier: &table.Outlier{
		ConsecutiveErrors: 3, BaseEjectionTime: table.Duration(base), MaxEjectionTime: table.Duration(10 * base), MaxEjectionPercent: 50,
	}})
}

func TestOutlierEjection(t *testing.T) {
	var mu sync.Mutex
	var badHits int64
	good := newBackend(t, "good")
	bad := statusBackend(t, 503, &badHits, &mu)
	p := newProxy(t, Options{})
	route := outlierRoute(addr(good.srv), bad, time.Second)
	p.apply(t, tableOf(route))

	errors := 0
	for range 40 {
		if code, _ := p.get(t, "web.shop.mesh", "/"); code != 200 {
			errors++
		}
	}
	if errors != 3 || badHits != 3 {
		t.Fatalf("clients saw %d errors, the bad endpoint %d requests; want 3 and 3 (ejected after 3 in a row)", errors, badHits)
	}
	if n := testutil.ToFloat64(p.rt.policy.ejections.WithLabelValues("shop", "web")); n != 1 {
		t.Fatalf("ejections_total = %v, want 1", n)
	}
	if n, err := testutil.GatherAndCount(p.reg, "nodemesh_proxy_http_outlier_ejected_endpoints"); err != nil || n != 1 {
		t.Fatalf("ejected_endpoints series: %d, %v", n, err)
	}
	st := p.rt.PolicyState()
	if len(st) != 1 || len(st[0].Endpoints) != 2 || !st[0].Endpoints[0].Ejected && !st[0].Endpoints[1].Ejected {
		t.Fatalf("state does not show the ejection: %+v", st)
	}

	// A reload that rebuilds the route keeps the ejection.
	route.Backends[0].Endpoints = append(route.Backends[0].Endpoints, table.Endpoint{Address: addr(newBackend(t, "good2").srv)})
	p.apply(t, tableOf(route))
	for range 10 {
		if code, _ := p.get(t, "web.shop.mesh", "/"); code != 200 {
			t.Fatal("the reload returned the ejected endpoint early")
		}
	}

	// After the base ejection time it comes back, fails 3 more times, and
	// is ejected for twice as long.
	time.Sleep(1100 * time.Millisecond)
	for range 30 {
		_, _ = p.get(t, "web.shop.mesh", "/")
	}
	mu.Lock()
	hits := badHits
	mu.Unlock()
	if hits != 6 {
		t.Fatalf("the bad endpoint saw %d requests, want 6 (3, ejected, back, 3, ejected)", hits)
	}
	for _, e := range p.rt.PolicyState()[0].Endpoints {
		if e.Address == bad && (e.Ejections != 2 || e.Level != 2) {
			t.Fatalf("bad endpoint state %+v, want 2 ejections at level 2", e)
		}
	}
}

func TestLocality(t *testing.T) {
	local, zone, far := newBackend(t, "local"), newBackend(t, "zone"), newBackend(t, "far")
	eps := func(localAddr string) table.Backend {
		return table.Backend{Service: svc("web"), Weight: 1, Endpoints: []table.Endpoint{
			{Address: localAddr, Node: "node-a", Zone: "z1"},
			{Address: addr(zone.srv), Node: "node-b", Zone: "z1"},
			{Address: addr(far.srv), Node: "node-c", Zone: "z2"},
		}}
	}
	tb := func(r table.HTTPRoute) *table.Table {
		t := tableOf(r)
		t.Nodes = []table.Node{{Name: "node-a", Zone: "z1"}, {Name: "node-b", Zone: "z1"}, {Name: "node-c", Zone: "z2"}}
		return t
	}
	p := newProxy(t, Options{Node: "node-a"})
	loc := &table.Locality{Prefer: table.LocalityNode, MaxInFlight: 100}
	p.apply(t, tb(withMiddleware(httpRoute("web", 80, eps(addr(local.srv))), table.Middleware{Locality: loc})))
	for range 50 {
		if code, body := p.get(t, "web.shop.mesh", "/"); code != 200 || !strings.HasPrefix(body, "local ") {
			t.Fatalf("got %d %q, want every request on the local pod", code, body)
		}
	}

	// The local pod dies: with retries, every request still succeeds (the
	// retry avoids the endpoint that failed), and with outlier detection
	// the dead pod is ejected after 2 errors, after which nothing is
	// retried any more.
	dead := deadAddr(t)
	p.apply(t, tb(withMiddleware(httpRoute("web", 80, eps(dead)), table.Middleware{
		Locality: loc, RetryAttempts: 2,
		RetryBudget: &table.RetryBudget{Percent: 20, MinPerSecond: 3, Window: table.Duration(10 * time.Second)},
		Outlier:     &table.Outlier{ConsecutiveErrors: 2, BaseEjectionTime: table.Duration(time.Minute), MaxEjectionTime: table.Duration(time.Minute), MaxEjectionPercent: 50},
	})))
	for range 50 {
		if code, body := p.get(t, "web.shop.mesh", "/"); code != 200 || !strings.HasPrefix(body, "zone ") {
			t.Fatalf("got %d %q, want the zone's pod to take over without a failure", code, body)
		}
	}
	if n := testutil.ToFloat64(p.rt.metrics.retries.WithLabelValues("shop", "web")); n != 2 {
		t.Fatalf("%v retries, want 2 (until the dead pod was ejected)", n)
	}
	if far.hits.Load() != 0 {
		t.Fatalf("the other zone got %d requests while the zone had a healthy pod", far.hits.Load())
	}
	if st := p.rt.PolicyState(); len(st) != 1 || st[0].Zone != "z1" {
		t.Fatalf("state %+v, want the route's zone z1", st)
	}
}

func TestLocalityFollowsTheZoneOfTheTable(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	route := withMiddleware(httpRoute("web", 80, table.Backend{Service: svc("web"), Weight: 1, Endpoints: []table.Endpoint{
		{Address: addr(a.srv), Node: "node-1", Zone: "z1"},
		{Address: addr(b.srv), Node: "node-2", Zone: "z2"},
	}}), table.Middleware{Locality: &table.Locality{Prefer: table.LocalityZone}})
	p := newProxy(t, Options{Node: "node-x"})
	for _, zone := range []string{"z1", "z2"} {
		tb := tableOf(route)
		tb.Nodes = []table.Node{{Name: "node-x", Zone: zone}}
		p.apply(t, tb) // the same route, a new zone for this proxy
		want := map[string]string{"z1": "a ", "z2": "b "}[zone]
		for range 10 {
			if _, body := p.get(t, "web.shop.mesh", "/"); !strings.HasPrefix(body, want) {
				t.Fatalf("in zone %s got %q", zone, body)
			}
		}
	}
}

// TestPlainRouteHasNoPolicy: a route without policy builds exactly the
// plain chain (oxy round robin, no policy state), which is what keeps its
// cost unchanged (BenchmarkInMemoryChain).
func TestPlainRouteHasNoPolicy(t *testing.T) {
	p := newProxy(t, Options{Node: "node-a"})
	p.apply(t, tableOf(httpRoute("web", 80, backendOf("web", 1, "10.244.1.1:80"))))
	r := p.rt.current.Load().routes[routeKey{svc("web"), 80}]
	if r.pol.states != nil || r.pol.inflight != nil || r.pol.budget != nil {
		t.Fatalf("a plain route has policy state: %+v", r.pol)
	}
	if _, ok := r.inner.(*selector).def.(*backendSet); !ok {
		t.Fatalf("a plain route's backends are %T, want the oxy backendSet", r.inner.(*selector).def)
	}
	if st := p.rt.PolicyState(); len(st) != 0 {
		t.Fatalf("a plain route shows policy state %+v", st)
	}
	m := p.rt.policy
	for name, vec := range map[string]*prometheus.CounterVec{"faults": m.faults, "maxRequests": m.maxRequests, "budget": m.budgetExhausted, "ejections": m.ejections, "overflow": m.overflow} {
		if n := testutil.CollectAndCount(vec); n != 0 {
			t.Errorf("a plain route exports %d %s series, want none", n, name)
		}
	}
}
