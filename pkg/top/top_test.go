package top

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/pkg/edgestats"
)

// fakeProxy serves edge metrics whose counters grow by step requests (a
// tenth of them 5xx) per scrape.
func fakeProxy(t *testing.T, source, backend string, step int) *httptest.Server {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		k := n.Add(1)
		ok, bad := float64(k)*float64(step)*0.9, float64(k)*float64(step)*0.1
		l := fmt.Sprintf(`backend=%q,namespace="shop",service="web",source_namespace="shop",source_service_account="sa",source_workload=%q`, backend, source)
		fmt.Fprintf(w, "# TYPE nodemesh_proxy_edge_http_requests_total counter\n")
		fmt.Fprintf(w, "nodemesh_proxy_edge_http_requests_total{%s,code_class=\"2xx\"} %v\n", l, ok)
		fmt.Fprintf(w, "nodemesh_proxy_edge_http_requests_total{%s,code_class=\"5xx\"} %v\n", l, bad)
		fmt.Fprintf(w, "# TYPE nodemesh_proxy_edge_http_request_duration_seconds histogram\n")
		fmt.Fprintf(w, "nodemesh_proxy_edge_http_request_duration_seconds_bucket{%s,le=\"0.001\"} %v\n", l, ok+bad)
		fmt.Fprintf(w, "nodemesh_proxy_edge_http_request_duration_seconds_bucket{%s,le=\"+Inf\"} %v\n", l, ok+bad)
		fmt.Fprintf(w, "nodemesh_proxy_edge_http_request_duration_seconds_sum{%s} 0\n", l)
		fmt.Fprintf(w, "nodemesh_proxy_edge_http_request_duration_seconds_count{%s} %v\n", l, ok+bad)
	}))
	t.Cleanup(srv.Close)
	return srv
}

var row = regexp.MustCompile(`^(\S+)\s{2,}(\S+)\s{2,}(\S+)\s{2,}([\d.]+)\s{2,}([\d.]+)%\s{2,}(\S+)\s{2,}(\S+)$`)

func TestRunPrintsSortedFrames(t *testing.T) {
	a := fakeProxy(t, "Deployment/slow", "web-v1", 10)
	b := fakeProxy(t, "Deployment/busy", "web-v2", 100)
	var out bytes.Buffer
	err := Run(t.Context(), Options{
		Targets: func(context.Context) ([]edgestats.Target, error) {
			return edgestats.URLTargets([]string{a.URL, b.URL}, nil), nil
		},
		Interval: 100 * time.Millisecond,
		Sort:     edgestats.SortRPS,
		Frames:   2,
		Out:      &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	frames := strings.Split(strings.TrimSpace(out.String()), "\n\n")
	if len(frames) != 2 {
		t.Fatalf("%d frames, want 2:\n%s", len(frames), out.String())
	}
	for _, f := range frames {
		lines := strings.Split(f, "\n")
		if !strings.HasPrefix(lines[0], "nodemesh top") || !strings.Contains(lines[0], "2 proxies") || strings.Fields(lines[1])[0] != "SOURCE" {
			t.Fatalf("frame head:\n%s", f)
		}
		if len(lines) != 4 {
			t.Fatalf("frame has %d lines, want 4:\n%s", len(lines), f)
		}
		first, second := row.FindStringSubmatch(lines[2]), row.FindStringSubmatch(lines[3])
		if first == nil || second == nil {
			t.Fatalf("rows do not parse:\n%s", f)
		}
		// Sorted by rps: the busy edge (100 per scrape) before the slow one.
		if first[1] != "shop/Deployment/busy" || first[3] != "web-v2" || second[1] != "shop/Deployment/slow" {
			t.Errorf("order:\n%s", f)
		}
		if first[5] != "90.00" || first[6] != "0.5ms" {
			t.Errorf("success %s%%, p50 %s; want 90.00%% and 0.5ms", first[5], first[6])
		}
	}
}

func TestFilterAndBadSort(t *testing.T) {
	stats := []edgestats.Stat{
		{Edge: edgestats.Edge{SourceNamespace: "a", Namespace: "b"}, HasTraffic: true},
		{Edge: edgestats.Edge{SourceNamespace: "c", Namespace: "c"}, HasTraffic: true},
		{Edge: edgestats.Edge{SourceNamespace: "a", Namespace: "a"}},
	}
	if got := Filter(stats, "a"); len(got) != 1 || got[0].Namespace != "b" {
		t.Errorf("Filter a: %+v", got)
	}
	if got := Filter(stats, ""); len(got) != 2 {
		t.Errorf("Filter all: %+v", got)
	}
	if err := Run(t.Context(), Options{Sort: "name"}); err == nil {
		t.Error("sort=name accepted")
	}
}

func TestLatency(t *testing.T) {
	for sec, want := range map[float64]string{0.0004: "0.4ms", 0.025: "25ms", 1.5: "1.50s"} {
		if got := Latency(sec); got != want {
			t.Errorf("Latency(%v) = %s, want %s", sec, got, want)
		}
	}
}
