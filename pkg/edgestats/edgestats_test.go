package edgestats

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// edgeText is what a proxy with edge metrics serves: client/web calls
// shop/web, split between web-v1 and web-v2.
const edgeText = `# TYPE nodemesh_proxy_edge_http_requests_total counter
nodemesh_proxy_edge_http_requests_total{backend="web-v1",code_class="2xx",namespace="shop",service="web",source_namespace="shop",source_service_account="client",source_workload="Deployment/client"} %[1]v
nodemesh_proxy_edge_http_requests_total{backend="web-v1",code_class="5xx",namespace="shop",service="web",source_namespace="shop",source_service_account="client",source_workload="Deployment/client"} %[2]v
nodemesh_proxy_edge_http_requests_total{backend="web-v2",code_class="2xx",namespace="shop",service="web",source_namespace="shop",source_service_account="client",source_workload="Deployment/client"} %[3]v
# TYPE nodemesh_proxy_edge_http_request_duration_seconds histogram
nodemesh_proxy_edge_http_request_duration_seconds_bucket{backend="web-v1",namespace="shop",service="web",source_namespace="shop",source_service_account="client",source_workload="Deployment/client",le="0.01"} %[4]v
nodemesh_proxy_edge_http_request_duration_seconds_bucket{backend="web-v1",namespace="shop",service="web",source_namespace="shop",source_service_account="client",source_workload="Deployment/client",le="0.1"} %[5]v
nodemesh_proxy_edge_http_request_duration_seconds_bucket{backend="web-v1",namespace="shop",service="web",source_namespace="shop",source_service_account="client",source_workload="Deployment/client",le="+Inf"} %[5]v
nodemesh_proxy_edge_http_request_duration_seconds_sum{backend="web-v1",namespace="shop",service="web",source_namespace="shop",source_service_account="client",source_workload="Deployment/client"} 1
nodemesh_proxy_edge_http_request_duration_seconds_count{backend="web-v1",namespace="shop",service="web",source_namespace="shop",source_service_account="client",source_workload="Deployment/client"} %[5]v
# TYPE nodemesh_proxy_table_version gauge
nodemesh_proxy_table_version 42
`

func sample(t *testing.T, texts ...string) *Sample {
	t.Helper()
	s := NewSample()
	for i, text := range texts {
		if err := s.Add(string(rune('a'+i)), strings.NewReader(text)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestRatesFromEdgeSeries(t *testing.T) {
	prev := sample(t, sprintf(edgeText, 100, 0, 10, 50, 100))
	cur := sample(t, sprintf(edgeText, 180, 20, 30, 100, 200))
	stats := Rates(prev, cur, 2*time.Second)
	if !cur.EdgeSeries || cur.Versions["a"] != 42 {
		t.Fatalf("EdgeSeries %v, versions %v", cur.EdgeSeries, cur.Versions)
	}
	if len(stats) != 2 {
		t.Fatalf("got %d stats, want 2: %+v", len(stats), stats)
	}
	v1, v2 := stats[0], stats[1]
	if v1.Backend != "web-v1" || v1.Source() != "shop/Deployment/client" || v1.Destination() != "shop/web" {
		t.Fatalf("first edge %+v", v1.Edge)
	}
	// 100 more requests to v1 (80 ok, 20 failed) in 2 s.
	if v1.Requests != 100 || v1.RPS != 50 || v1.Success != 0.8 {
		t.Errorf("v1: requests %v rps %v success %v, want 100, 50, 0.8", v1.Requests, v1.RPS, v1.Success)
	}
	// 50 of the 100 new durations were under 10 ms: p50 is 10 ms; p99 lies
	// in the 10-100 ms bucket, 49/50 of the way.
	if v1.P50 != 0.01 || math.Abs(v1.P99-(0.01+0.09*49/50)) > 1e-9 {
		t.Errorf("v1 p50 %v p99 %v", v1.P50, v1.P99)
	}
	if v2.Requests != 20 || v2.Success != 1 || v2.P99 != 0 {
		t.Errorf("v2: %+v", v2)
	}
	got := ByDestination(stats, "shop", "web")
	if got["web-v1"] != 100 || got["web-v2"] != 20 {
		t.Errorf("ByDestination = %v", got)
	}
}

func TestRatesSumProxiesAndSurviveRestart(t *testing.T) {
	prev := sample(t, sprintf(edgeText, 100, 0, 0, 0, 0), sprintf(edgeText, 10, 0, 0, 0, 0))
	// Proxy b restarted: its counter went from 10 to 4.
	cur := sample(t, sprintf(edgeText, 150, 0, 0, 0, 0), sprintf(edgeText, 4, 0, 0, 0, 0))
	stats := Rates(prev, cur, time.Second)
	// Summed: 110 -> 154. That grew, so the delta is 44 (the reset of one
	// proxy hides in the sum; edges are summed before rates).
	if stats[0].Requests != 44 {
		t.Errorf("requests %v, want 44", stats[0].Requests)
	}
	// A whole-sum reset counts from zero.
	reset := sample(t, sprintf(edgeText, 5, 0, 0, 0, 0))
	if s := Rates(cur, reset, time.Second); s[0].Requests != 5 {
		t.Errorf("after a reset: %v requests, want 5", s[0].Requests)
	}
}

func TestPerServiceSeriesFallback(t *testing.T) {
	text := `# TYPE nodemesh_proxy_http_requests_total counter
nodemesh_proxy_http_requests_total{code="200",method="GET",namespace="shop",service="web"} 90
nodemesh_proxy_http_requests_total{code="503",method="GET",namespace="shop",service="web"} 10
nodemesh_proxy_http_requests_total{code="404",method="GET",namespace="shop",service="api"} 5
`
	s := sample(t, text)
	if s.EdgeSeries {
		t.Error("EdgeSeries true for per-service series")
	}
	stats := Rates(nil, s, 10*time.Second)
	if len(stats) != 2 || stats[0].Service != "api" || stats[1].Service != "web" {
		t.Fatalf("stats %+v", stats)
	}
	if stats[0].Success != 1 || stats[1].Success != 0.9 || stats[1].RPS != 10 || stats[1].Source() != Unknown {
		t.Errorf("api %+v web %+v", stats[0], stats[1])
	}
	if len(ByDestination(stats, "shop", "web")) != 0 {
		t.Error("per-service series must not give backend shares")
	}
}

func TestSortBy(t *testing.T) {
	stats := []Stat{
		{Edge: Edge{Namespace: "a", Service: "x"}, RPS: 1, Success: 0.5, P99: 0.2, HasTraffic: true},
		{Edge: Edge{Namespace: "a", Service: "y"}, RPS: 5, Success: 1, P99: 0.1, HasTraffic: true},
		{Edge: Edge{Namespace: "a", Service: "z"}},
	}
	for key, want := range map[string]string{SortRPS: "yxz", SortSuccess: "xyz", SortP99: "xyz", "": "xyz"} {
		SortBy(stats, key)
		var got string
		for _, s := range stats {
			got += s.Service
		}
		if got != want {
			t.Errorf("sort %q: %s, want %s", key, got, want)
		}
	}
}

func TestQuantile(t *testing.T) {
	b := []Bucket{{0.1, 10}, {1, 20}, {math.Inf(1), 30}}
	for _, tc := range []struct{ q, want float64 }{{0.5, 0.55}, {0.25, 0.1 * 7.5 / 10}, {0.9, 1}, {0, 0}} {
		if got := Quantile(tc.q, b); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if Quantile(0.5, nil) != 0 || Quantile(0.5, []Bucket{{math.Inf(1), 0}}) != 0 {
		t.Error("empty histogram")
	}
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
