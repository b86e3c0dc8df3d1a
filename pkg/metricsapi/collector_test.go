package metricsapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/pkg/edgestats"
)

// proxyText is one proxy's edge metrics: client -> web, ok answers,
// failures and latency buckets as given.
func proxyText(started float64, ok, failed, fast, all int) string {
	const l = `backend="web-v1",namespace="shop",service="web",source_namespace="shop",source_service_account="client",source_workload="Deployment/client"`
	return fmt.Sprintf(`# TYPE process_start_time_seconds gauge
process_start_time_seconds %v
# TYPE nodemesh_proxy_edge_http_requests_total counter
nodemesh_proxy_edge_http_requests_total{%[2]s,code_class="2xx"} %[3]d
nodemesh_proxy_edge_http_requests_total{%[2]s,code_class="5xx"} %[4]d
# TYPE nodemesh_proxy_edge_http_request_duration_seconds histogram
nodemesh_proxy_edge_http_request_duration_seconds_bucket{%[2]s,le="0.01"} %[5]d
nodemesh_proxy_edge_http_request_duration_seconds_bucket{%[2]s,le="0.1"} %[6]d
nodemesh_proxy_edge_http_request_duration_seconds_bucket{%[2]s,le="+Inf"} %[6]d
nodemesh_proxy_edge_http_request_duration_seconds_sum{%[2]s} 1
nodemesh_proxy_edge_http_request_duration_seconds_count{%[2]s} %[6]d
`, started, l, ok, failed, fast, all)
}

// fakeProxies serves texts by proxy name, changed by the test between
// scrapes.
type fakeProxies map[string]string

func (f fakeProxies) targets(context.Context) ([]edgestats.Target, error) {
	var out []edgestats.Target
	for name := range f {
		out = append(out, edgestats.Target{Name: name, Fetch: func(context.Context) ([]byte, error) { return []byte(f[name]), nil }})
	}
	return out, nil
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var clientToWeb = edgestats.Edge{SourceNamespace: "shop", SourceWorkload: "Deployment/client", Namespace: "shop", Service: "web", Backend: "web-v1"}

func TestWindowSumsProxiesAndHandlesResets(t *testing.T) {
	now := time.Unix(10000, 0)
	longAgo := float64(now.Add(-time.Hour).Unix())
	proxies := fakeProxies{
		"node-a": proxyText(longAgo, 100, 0, 100, 100),
		"node-b": proxyText(longAgo, 50, 5, 55, 55),
	}
	c := &Collector{Targets: proxies.targets, Interval: 10 * time.Second, MaxWindow: time.Minute, Log: quiet, now: func() time.Time { return now }}
	scrape := func(d time.Duration) { now = now.Add(d); c.Scrape(context.Background()) }
	scrape(0)
	// 30 s later: node-a served 30 more (10 slow), node-b restarted and
	// served 7 since (1 failed).
	proxies["node-a"] = proxyText(longAgo, 130, 0, 120, 130)
	proxies["node-b"] = proxyText(float64(now.Add(25*time.Second).Unix()), 6, 1, 7, 7)
	scrape(30 * time.Second)
	got, latest := c.Window(30 * time.Second)
	e := got[clientToWeb]
	if !latest.Equal(now) || e == nil || e.Requests != 37 || e.Failures != 1 {
		t.Fatalf("window: %+v at %v, want 37 requests, 1 failure at %v", e, latest, now)
	}
	if p99 := edgestats.Quantile(0.99, e.Buckets); p99 <= 0.01 {
		t.Errorf("p99 %v: 10 of 37 requests took over 10 ms", p99)
	}
	// A window longer than the history: node-a's oldest sample is the
	// baseline (it started long ago), node-b counts from zero (it started
	// within the window).
	got, _ = c.Window(time.Minute)
	if e := got[clientToWeb]; e.Requests != 37 {
		t.Errorf("minute window: %v requests, want 37", e.Requests)
	}
	// A proxy that is gone no longer counts.
	delete(proxies, "node-b")
	scrape(10 * time.Second)
	got, _ = c.Window(40 * time.Second)
	if e := got[clientToWeb]; e.Requests != 30 {
		t.Errorf("after node-b left: %v requests, want node-a's 30", e.Requests)
	}
}

func TestHistoryKeepsOneBaselineBeyondMaxWindow(t *testing.T) {
	base := time.Unix(0, 0)
	h := &history{}
	for i := range 10 {
		h.samples = append(h.samples, sample{at: base.Add(time.Duration(i) * 10 * time.Second)})
	}
	h.prune(base.Add(45 * time.Second))
	if len(h.samples) != 6 || !h.samples[0].at.Equal(base.Add(40*time.Second)) {
		t.Errorf("kept %d samples from %v, want 6 from 40s", len(h.samples), h.samples[0].at.Sub(base))
	}
}
