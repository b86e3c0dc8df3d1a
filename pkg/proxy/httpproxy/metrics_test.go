package httpproxy

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// scrape returns the proxy's metrics in the text format.
func (p *proxy) scrape(t *testing.T) string {
	t.Helper()
	mfs, err := p.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// waitMetric waits up to 5 s for a line of the scrape (metrics are recorded
// after the response is written, so a client may see the answer first).
func waitMetric(t *testing.T, p *proxy, line string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := p.scrape(t)
		if strings.Contains(s, line+"\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metric line %q not found in:\n%s", line, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMetrics(t *testing.T) {
	web, api := newBackend(t, "web"), newBackend(t, "api")
	p := newProxy(t, Options{})
	p.apply(t, tableOf(
		httpRoute("web", 80, backendOf("web", 1, addr(web.srv))),
		httpRoute("api", 80, backendOf("api", 1, addr(api.srv))),
	))
	// A service has series once it has had traffic, not before.
	if s := p.scrape(t); strings.Contains(s, "nodemesh_proxy_http_request") {
		t.Errorf("request series before any request:\n%s", s)
	}
	for i := 0; i < 3; i++ {
		p.get(t, "web.shop.mesh", "/")
	}
	p.do(t, "POST", "web.shop.mesh", "/", strings.NewReader("x"))
	p.do(t, "BREW", "web.shop.mesh", "/", nil) // unbounded methods count as OTHER
	p.get(t, "api.shop.mesh", "/")
	p.get(t, "unknown.shop.mesh", "/")

	for _, line := range []string{
		`nodemesh_proxy_http_requests_total{code="200",method="GET",namespace="shop",service="web"} 3`,
		`nodemesh_proxy_http_requests_total{code="200",method="POST",namespace="shop",service="web"} 1`,
		`nodemesh_proxy_http_requests_total{code="200",method="OTHER",namespace="shop",service="web"} 1`,
		`nodemesh_proxy_http_requests_total{code="200",method="GET",namespace="shop",service="api"} 1`,
		`nodemesh_proxy_http_request_duration_seconds_count{namespace="shop",service="web"} 5`,
		`nodemesh_proxy_http_unknown_host_requests_total 1`,
	} {
		waitMetric(t, p, line)
	}

	// A service that leaves the table leaves the metrics too.
	p.apply(t, tableOf(httpRoute("web", 80, backendOf("web", 1, addr(web.srv)))))
	if s := p.scrape(t); strings.Contains(s, `service="api"`) {
		t.Errorf("series of a removed service remain:\n%s", s)
	}
	if s := p.scrape(t); !strings.Contains(s, `service="web"`) {
		t.Errorf("series of a kept service were dropped")
	}
}

func TestRetriesAreCounted(t *testing.T) {
	good := newBackend(t, "good")
	r := httpRoute("web", 80, backendOf("web", 1, deadAddr(t), addr(good.srv)))
	r.Middleware.RetryAttempts = 3
	p := newProxy(t, Options{})
	p.apply(t, tableOf(r))
	if code, _ := p.get(t, "web.shop.mesh", "/"); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	waitMetric(t, p, `nodemesh_proxy_http_retries_total{namespace="shop",service="web"} 1`)
	waitMetric(t, p, `nodemesh_proxy_http_requests_total{code="200",method="GET",namespace="shop",service="web"} 1`)
}

// TestRebuiltRouteKeepsItsServiceMetrics: a reload that rebuilds a route
// (its endpoints changed) hands the new route the service's metrics, with
// the series it already looked up; a service that leaves the table and
// comes back starts afresh.
func TestRebuiltRouteKeepsItsServiceMetrics(t *testing.T) {
	rt := New(Options{Registerer: prometheus.NewRegistry()})
	defer rt.Close()
	metricsOf := func(tb *table.Table) *routeMetrics {
		t.Helper()
		if err := rt.Apply(tb); err != nil {
			t.Fatal(err)
		}
		r := rt.current.Load().routes[routeKey{svc("web"), 80}]
		if r == nil {
			t.Fatal("no route for shop/web")
		}
		return r.metrics
	}
	first := metricsOf(tableOf(httpRoute("web", 80, backendOf("web", 1, "10.244.1.1:8080"))))
	first.counter(http.MethodGet, 200)
	rebuilt := metricsOf(tableOf(httpRoute("web", 80, backendOf("web", 1, "10.244.1.2:8080"))))
	if rebuilt != first {
		t.Fatal("the rebuilt route has new metrics; want the service's")
	}
	if p := rebuilt.counters.Load(); p == nil || len(*p) != 1 {
		t.Errorf("the looked-up series were not kept")
	}
	if err := rt.Apply(tableOf(httpRoute("other", 80, backendOf("other", 1, "10.244.1.3:8080")))); err != nil {
		t.Fatal(err)
	}
	if back := metricsOf(tableOf(httpRoute("web", 80, backendOf("web", 1, "10.244.1.2:8080")))); back == first {
		t.Error("a service back in the table after leaving it kept its old metrics")
	}
}
