package httpproxy

import (
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/pkg/table"
)

func TestWeightedDistribution(t *testing.T) {
	a, b1, b2 := newBackend(t, "a"), newBackend(t, "b1"), newBackend(t, "b2")
	p := newProxy(t, Options{})
	p.apply(t, tableOf(httpRoute("web", 80,
		backendOf("web-a", 80, addr(a.srv)),
		backendOf("web-b", 20, addr(b1.srv), addr(b2.srv)),
		backendOf("web-c", 0, deadAddr(t)), // drained: never picked
	)))
	const n = 2000
	for i := 0; i < n; i++ {
		if code, body := p.get(t, "web.shop.mesh", "/"); code != 200 {
			t.Fatalf("request %d: %d %s", i, code, body)
		}
	}
	// Backend choice is a weighted draw: 1600 expected for a, standard
	// deviation sqrt(n*0.8*0.2) = 17.9; allow 5 of them.
	tol := 5 * math.Sqrt(n*0.8*0.2)
	if got := float64(a.hits.Load()); math.Abs(got-0.8*n) > tol {
		t.Errorf("backend a got %v of %d requests, want 1600 ± %.0f", got, n, tol)
	}
	// Within a backend, oxy's round robin alternates exactly.
	if d := b1.hits.Load() - b2.hits.Load(); d < -1 || d > 1 {
		t.Errorf("endpoints of b got %d and %d requests; round robin should split evenly", b1.hits.Load(), b2.hits.Load())
	}
}

// hangup is a backend that reads the request and closes the connection
// without answering: a network error after the request was sent.
func hangup(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	s := newBackendFunc(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		_, _ = io.ReadAll(r.Body)
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	})
	return addr(s), &n
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		chunked  bool // body of unknown length: cannot be buffered
		first    string
		wantCode int
		wantGood int64 // requests the good endpoint must see
		wantHang int64 // requests the hang-up endpoint must see (-1: any)
	}{
		{"GET after a refused connect", "GET", false, "dead", 200, 1, 0},
		{"POST after a refused connect is safe to retry", "POST", false, "dead", 200, 1, 0},
		{"GET after the backend hung up", "GET", false, "hangup", 200, 1, -1},
		{"POST after the backend hung up is never replayed", "POST", false, "hangup", 502, 0, 1},
		{"unbuffered POST is never replayed", "POST", true, "dead", 502, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := newBackend(t, "good")
			hangAddr, hangHits := hangup(t)
			first := deadAddr(t)
			if tt.first == "hangup" {
				first = hangAddr
			}
			// oxy's round robin starts with the first endpoint.
			r := httpRoute("web", 80, backendOf("web", 1, first, addr(good.srv)))
			r.Middleware.RetryAttempts = 2
			p := newProxy(t, Options{})
			p.apply(t, tableOf(r))

			var body io.Reader = strings.NewReader("payload")
			if tt.chunked {
				body = io.MultiReader(strings.NewReader("pay"), strings.NewReader("load")) // no length known
			}
			code, got := p.do(t, tt.method, "web.shop.mesh", "/", body)
			if code != tt.wantCode {
				t.Fatalf("status %d %q, want %d", code, got, tt.wantCode)
			}
			if code == 200 && tt.method == "POST" && got != "good POST payload" {
				t.Errorf("replayed body arrived as %q", got)
			}
			if good.hits.Load() != tt.wantGood {
				t.Errorf("good endpoint saw %d requests, want %d", good.hits.Load(), tt.wantGood)
			}
			if tt.wantHang >= 0 && hangHits.Load() != tt.wantHang {
				t.Errorf("hang-up endpoint saw %d requests, want %d", hangHits.Load(), tt.wantHang)
			}
		})
	}
}

func TestNoRetriesWithoutMiddleware(t *testing.T) {
	good := newBackend(t, "good")
	p := newProxy(t, Options{})
	p.apply(t, tableOf(httpRoute("web", 80, backendOf("web", 1, deadAddr(t), addr(good.srv)))))
	if code, _ := p.get(t, "web.shop.mesh", "/"); code != 502 {
		t.Fatalf("status %d, want 502 from the dead endpoint", code)
	}
}

func TestCircuitBreakerTripsAndRecovers(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	b := newBackendFunc(t, func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			w.WriteHeader(http.StatusBadGateway) // counted as a network error by oxy
			return
		}
		_, _ = w.Write([]byte("fine"))
	})
	r := httpRoute("web", 80, backendOf("web", 1, addr(b)))
	r.Middleware.CircuitBreaker = "NetworkErrorRatio() > 0.5"
	p := newProxy(t, Options{
		CircuitBreakerFallback:    200 * time.Millisecond,
		CircuitBreakerRecovery:    200 * time.Millisecond,
		CircuitBreakerCheckPeriod: 5 * time.Millisecond,
	})
	p.apply(t, tableOf(r))

	tripped := false
	for i := 0; i < 500 && !tripped; i++ {
		code, body := p.get(t, "web.shop.mesh", "/")
		tripped = code == 503 && strings.Contains(body, "circuit breaker open for shop/web")
		time.Sleep(time.Millisecond)
	}
	if !tripped {
		t.Fatal("breaker never tripped")
	}
	broken.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := p.get(t, "web.shop.mesh", "/")
		if code == 200 && body == "fine" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("breaker did not recover: last answer %d %q", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRateLimitPerSource(t *testing.T) {
	b := newBackend(t, "web")
	r := httpRoute("web", 80, backendOf("web", 1, addr(b.srv)))
	r.Middleware.RateLimit = &table.RateLimit{Average: 1, Burst: 3}
	p := newProxy(t, Options{})
	p.apply(t, tableOf(r))

	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	}
	send := func(c *http.Client) int {
		req, _ := http.NewRequest("GET", p.url+"/", nil)
		req.Host = "web.shop.mesh"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	one, two := from("127.0.0.1"), from("127.0.0.2")
	var codes []int
	for i := 0; i < 5; i++ {
		codes = append(codes, send(one))
	}
	limited := 0
	for _, c := range codes {
		if c == http.StatusTooManyRequests {
			limited++
		}
	}
	// Burst 3 at 1/s: 3 pass; of the other 2, at most one refills in time.
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 200 || limited < 1 {
		t.Fatalf("codes from one source = %v, want 3 x 200 then 429", codes)
	}
	if c := send(two); c != 200 {
		t.Fatalf("another source got %d: the limit must be per source", c)
	}
}

func TestBadTableKeepsOldOne(t *testing.T) {
	b := newBackend(t, "web")
	p := newProxy(t, Options{})
	good := tableOf(httpRoute("web", 80, backendOf("web", 1, addr(b.srv))))
	p.apply(t, good)
	badRegex := tableOf(httpRoute("web", 80, backendOf("web", 1, addr(b.srv))))
	badRegex.HTTP[0].Matches = []table.HTTPMatchRoute{{Name: "x", Match: table.HTTPMatch{PathRegex: "("}}}
	dupHost := tableOf(httpRoute("web", 80, backendOf("web", 1, addr(b.srv))), httpRoute("web", 80))
	dupHost.HTTP[1].Service.Name = "other"
	badScheme := tableOf(httpRoute("web", 80, backendOf("web", 1, addr(b.srv))))
	badScheme.HTTP[0].Scheme = "gopher"
	for name, bad := range map[string]*table.Table{"bad regex": badRegex, "duplicate host": dupHost, "bad scheme": badScheme} {
		if err := p.rt.Apply(bad); err == nil {
			t.Errorf("%s: Apply accepted it", name)
		}
		if p.rt.Table() != good {
			t.Errorf("%s: the serving table changed", name)
		}
		if code, _ := p.get(t, "web.shop.mesh", "/"); code != 200 {
			t.Errorf("%s: old table no longer serves: %d", name, code)
		}
	}
}

func TestClientGoneIsNotAnError(t *testing.T) {
	release := make(chan struct{})
	b := newBackendFunc(t, func(w http.ResponseWriter, r *http.Request) { <-release })
	defer close(release)
	p := newProxy(t, Options{})
	p.apply(t, tableOf(httpRoute("web", 80, backendOf("web", 1, addr(b)))))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.url+"/", nil)
	req.Host = "web.shop.mesh"
	if _, err := testClient.Do(req); err == nil {
		t.Fatal("request should have timed out on the client")
	}
	waitMetric(t, p, `nodemesh_proxy_http_requests_total{code="499",method="GET",namespace="shop",service="web"} 1`)
}

// The endpoint's URL is the forwarder's only for the call: the request the
// backend set was given has its own URL back after it, even when the
// forwarder panics (as it does to abort a response it cannot finish).
func TestBackendSetRestoresRequestURL(t *testing.T) {
	var seen []string
	panics := false
	fwd := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.URL.String())
		if panics {
			panic(http.ErrAbortHandler)
		}
	})
	set, err := newBackendSet([]table.Backend{backendOf("web", 1, "10.244.1.5:8080", "10.244.1.6:8080")}, table.SchemeHTTP, fwd, svc("web"))
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "http://web.shop.mesh/items?id=1", nil)
	orig := req.URL
	set.ServeHTTP(httptest.NewRecorder(), req)
	set.ServeHTTP(httptest.NewRecorder(), req)
	if req.URL != orig || req.URL.String() != "http://web.shop.mesh/items?id=1" {
		t.Errorf("request URL after serving: %v", req.URL)
	}
	want := []string{"http://10.244.1.5:8080", "http://10.244.1.6:8080"}
	if len(seen) != 2 || seen[0] != want[0] || seen[1] != want[1] {
		t.Errorf("forwarder saw %v, want %v (round robin over the endpoints)", seen, want)
	}
	panics = true
	func() {
		defer func() { _ = recover() }()
		set.ServeHTTP(httptest.NewRecorder(), req)
	}()
	if req.URL != orig {
		t.Errorf("request URL after a forwarder panic: %v", req.URL)
	}
}
