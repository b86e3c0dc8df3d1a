package httpproxy

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// TestReloadUnderLoad swaps the table 1,000 times, every couple of
// milliseconds, while clients send requests without pause, and requires
// that not one request fails.
func TestReloadUnderLoad(t *testing.T) {
	handler := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(20 * time.Millisecond) // in flight across several swaps
		}
		_, _ = io.WriteString(w, "ok")
	}
	b1, b2, b3 := newBackendFunc(t, handler), newBackendFunc(t, handler), newBackendFunc(t, handler)
	a := tableOf(httpRoute("web", 80, backendOf("web", 1, addr(b1), addr(b2))))
	bRoute := httpRoute("web", 80, backendOf("web", 3, addr(b2)), backendOf("web-v2", 1, addr(b3)))
	bRoute.Middleware.RetryAttempts = 2
	b := tableOf(bRoute, httpRoute("extra", 80, backendOf("extra", 1, addr(b1))))
	p := newProxy(t, Options{})
	p.apply(t, a)

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	for i := 0; i < 4; i++ {
		path := "/"
		if i == 0 {
			path = "/slow"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 1_000_000; n++ { // bounded; stop ends it much sooner
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", p.url+path, nil)
				req.Host = "web.shop.mesh"
				resp, err := client.Do(req)
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 && string(body) == "ok" {
						ok.Add(1)
						continue
					}
					err = &statusErr{resp.StatusCode, string(body)}
				}
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	start := time.Now()
	for i := 0; i < 1000; i++ {
		next := a
		if i%2 == 0 {
			next = b
		}
		if err := p.rt.Apply(next); err != nil {
			t.Fatalf("swap %d: %v", i, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during reloads; first: %v", failed.Load(), ok.Load()+failed.Load(), firstErr.Load())
	}
	if ok.Load() < 200 {
		t.Fatalf("only %d requests ran during %v of reloads: the load did not overlap the swaps", ok.Load(), elapsed)
	}
	t.Logf("1000 swaps in %v, %d requests, 0 failed", elapsed, ok.Load())
}

type statusErr struct {
	code int
	body string
}

func (e *statusErr) Error() string { return http.StatusText(e.code) + ": " + e.body }

func TestUnchangedRoutesKeepTheirHandler(t *testing.T) {
	b1, b2 := newBackend(t, "b1"), newBackend(t, "b2")
	p := newProxy(t, Options{})
	web := httpRoute("web", 80, backendOf("web", 1, addr(b1.srv)))
	api := httpRoute("api", 80, backendOf("api", 1, addr(b1.srv)))
	p.apply(t, tableOf(web, api))
	before := p.rt.current.Load().routes

	api2 := api
	api2.Backends = []table.Backend{backendOf("api", 1, addr(b2.srv))}
	p.apply(t, tableOf(web, api2))
	after := p.rt.current.Load().routes
	if before[routeKey{svc("web"), 80}] != after[routeKey{svc("web"), 80}] {
		t.Error("an unchanged route was rebuilt (its balancer and breaker state would reset)")
	}
	if before[routeKey{svc("api"), 80}] == after[routeKey{svc("api"), 80}] {
		t.Error("a changed route kept its old handler")
	}
	if _, body := p.get(t, "api.shop.mesh", "/"); body != "b2 GET " {
		t.Errorf("changed route still goes to %q", body)
	}
}
