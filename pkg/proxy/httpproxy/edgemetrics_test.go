package httpproxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nodemesh/nodemesh/pkg/proxy/edges"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// edgeRouter is a Router with edge metrics on its own registry.
func edgeRouter(t *testing.T, opts Options) (*Router, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	opts.EdgeMetrics = true
	rt := New(opts)
	t.Cleanup(rt.Close)
	return rt, reg
}

// clientPods are two workloads' pods: three of Deployment/client (SA
// client), one bare pod (no workload in the table).
var clientPods = []table.Pod{
	{IP: "10.244.1.5", Namespace: "shop", Name: "client-a", ServiceAccount: "client", Workload: "Deployment/client"},
	{IP: "10.244.1.6", Namespace: "shop", Name: "client-b", ServiceAccount: "client", Workload: "Deployment/client"},
	{IP: "10.244.1.7", Namespace: "shop", Name: "client-c", ServiceAccount: "client", Workload: "Deployment/client"},
	{IP: "10.244.1.8", Namespace: "tools", Name: "debug", ServiceAccount: ""},
}

// send serves one GET for host from remote through rt and returns the code.
func send(rt http.Handler, host, path, remote string) int {
	req := httptest.NewRequest(http.MethodGet, "http://"+host+path, nil)
	req.RemoteAddr = remote
	w := httptest.NewRecorder()
	rt.ServeHTTP(w, req)
	return w.Code
}

// edgeSamples returns the counter samples of family name as
// "label=value,...": value, label pairs in label-name order.
func edgeSamples(t *testing.T, reg prometheus.Gatherer, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[labelString(m)] = value(m)
		}
	}
	return out
}

func labelString(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	return strings.Join(parts, ",")
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return m.GetGauge().GetValue()
}

func edgeKey(srcNS, workload, sa, svc, backend, class string) string {
	k := fmt.Sprintf("backend=%s", backend)
	if class != "" {
		k += ",code_class=" + class
	}
	return k + fmt.Sprintf(",namespace=shop,service=%s,source_namespace=%s,source_service_account=%s,source_workload=%s", svc, srcNS, sa, workload)
}

func TestEdgeMetricsNameSourceAndSplitBackend(t *testing.T) {
	v1, v2 := newBackend(t, "web-v1"), newBackend(t, "web-v2")
	for _, retries := range []int{0, 3} { // plain chain, and the context-carried mark
		t.Run(fmt.Sprintf("retries=%d", retries), func(t *testing.T) {
			rt, reg := edgeRouter(t, Options{})
			route := httpRoute("web", 80, backendOf("web-v1", 80, addr(v1.srv)), backendOf("web-v2", 20, addr(v2.srv)))
			route.Middleware.RetryAttempts = retries
			tb := tableOf(route)
			tb.Pods = clientPods
			if err := rt.Apply(tb); err != nil {
				t.Fatal(err)
			}
			v1.hits.Store(0)
			v2.hits.Store(0)
			for i := range 300 {
				send(rt, "web.shop.mesh", "/", fmt.Sprintf("10.244.1.%d:4%04d", 5+i%3, i)) // three pods of one workload
			}
			send(rt, "web.shop.mesh", "/", "10.244.1.8:5000")  // a bare pod
			send(rt, "web.shop.mesh", "/", "10.244.9.9:5000")  // no pod
			send(rt, "web.shop.mesh", "/", "[fd00::1]:5000")   // no pod, IPv6
			send(rt, "nothing.shop.mesh", "/", "10.244.1.5:1") // no route: no edge
			got := edgeSamples(t, reg, "nodemesh_proxy_edge_http_requests_total")
			client1 := got[edgeKey("shop", "Deployment/client", "client", "web", "web-v1", "2xx")]
			client2 := got[edgeKey("shop", "Deployment/client", "client", "web", "web-v2", "2xx")]
			if client1+client2 != 300 || client1 < 200 || client2 < 30 {
				t.Errorf("client edges: v1 %v + v2 %v, want 300 split about 80/20; all: %v", client1, client2, got)
			}
			others := 0.0
			for k, v := range got {
				if strings.Contains(k, "source_workload=Pod/debug") && strings.Contains(k, "source_service_account=default") {
					others += v
				}
				if strings.Contains(k, "source_workload=unknown") && strings.Contains(k, "source_namespace=unknown") {
					others += 10 * v
				}
			}
			if others != 21 || len(got) > 6 {
				t.Errorf("bare pod once and unknown twice, want 1+2*10=21, got %v in %v", others, got)
			}
			if float64(v1.hits.Load()+v2.hits.Load()) != 303 {
				t.Errorf("backends got %d requests, want 303", v1.hits.Load()+v2.hits.Load())
			}
			hist := edgeSamples(t, reg, "nodemesh_proxy_edge_http_request_duration_seconds")
			if n := hist[edgeKey("shop", "Deployment/client", "client", "web", "web-v1", "")]; n != client1 {
				t.Errorf("latency samples of client->web-v1: %v, want %v", n, client1)
			}
		})
	}
}

func TestEdgeMetricsRefusedAndNoBackend(t *testing.T) {
	deny := func(_ *table.Table, _ *table.HTTPRoute, r *http.Request) error {
		if strings.HasPrefix(r.RemoteAddr, "10.244.1.6:") {
			return errors.New("denied")
		}
		return nil
	}
	rt, reg := edgeRouter(t, Options{Admit: deny})
	tb := tableOf(httpRoute("web", 80, backendOf("web-v1", 1))) // no endpoint: 503
	tb.Pods = clientPods
	if err := rt.Apply(tb); err != nil {
		t.Fatal(err)
	}
	if c := send(rt, "web.shop.mesh", "/", "10.244.1.6:1"); c != http.StatusForbidden {
		t.Fatalf("denied request: %d", c)
	}
	if c := send(rt, "web.shop.mesh", "/", "10.244.1.5:1"); c != http.StatusServiceUnavailable {
		t.Fatalf("request without backend: %d", c)
	}
	got := edgeSamples(t, reg, "nodemesh_proxy_edge_http_requests_total")
	if got[edgeKey("shop", "Deployment/client", "client", "web", "none", "4xx")] != 1 ||
		got[edgeKey("shop", "Deployment/client", "client", "web", "none", "5xx")] != 1 || len(got) != 2 {
		t.Errorf("want one 4xx (refused) and one 5xx (no endpoint), both backend none: %v", got)
	}
}

// TestEdgeMetricsBoundedUnderManyPathsAndSources sends 10,000 requests with
// distinct paths from 2,000 distinct source addresses, half of them pods of
// five workloads and half unknown: the series are bounded by workloads ×
// backends × code classes, and no label value is a path or an address.
func TestEdgeMetricsBoundedUnderManyPathsAndSources(t *testing.T) {
	be := newBackendFunc(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "7") {
			w.WriteHeader(http.StatusNotFound)
		}
	})
	rt, reg := edgeRouter(t, Options{})
	tb := tableOf(httpRoute("web", 80, backendOf("web-v1", 1, addr(be)), backendOf("web-v2", 1, addr(be))))
	for i := range 1000 {
		tb.Pods = append(tb.Pods, table.Pod{
			IP: fmt.Sprintf("10.244.%d.%d", 1+i/250, 1+i%250), Namespace: "shop", Name: fmt.Sprintf("p%d", i),
			ServiceAccount: "sa", Workload: fmt.Sprintf("Deployment/w%d", i%5),
		})
	}
	if err := rt.Apply(tb); err != nil {
		t.Fatal(err)
	}
	for i := range 10000 {
		var remote string
		if j := i % 2000; j < 1000 {
			remote = fmt.Sprintf("10.244.%d.%d:%d", 1+j/250, 1+j%250, 1024+i)
		} else {
			remote = fmt.Sprintf("10.99.%d.%d:%d", j/250, j%250, 1024+i)
		}
		send(rt, "web.shop.mesh", fmt.Sprintf("/item/%d", i), remote)
	}
	// 6 sources (5 workloads + unknown) × 2 backends × 2 classes (2xx, 4xx).
	const maxCounters, maxHistograms = 6 * 2 * 2, 6 * 2
	counters := edgeSamples(t, reg, "nodemesh_proxy_edge_http_requests_total")
	hists := edgeSamples(t, reg, "nodemesh_proxy_edge_http_request_duration_seconds")
	if len(counters) > maxCounters || len(hists) > maxHistograms {
		t.Errorf("%d counter and %d histogram series, want at most %d and %d", len(counters), len(hists), maxCounters, maxHistograms)
	}
	total := 0.0
	for k, v := range counters {
		total += v
		if strings.Contains(k, "/item") || strings.Contains(k, "10.") {
			t.Errorf("a label value carries a path or an address: %s", k)
		}
	}
	if total != 10000 {
		t.Errorf("counted %v requests, want 10000", total)
	}
}

func TestEdgeSeriesFollowTheTable(t *testing.T) {
	be := newBackend(t, "web")
	rt, reg := edgeRouter(t, Options{})
	tb := tableOf(httpRoute("web", 80, backendOf("web-v1", 1, addr(be.srv))), httpRoute("api", 80, backendOf("api", 1, addr(be.srv))))
	tb.Pods = clientPods
	if err := rt.Apply(tb); err != nil {
		t.Fatal(err)
	}
	send(rt, "web.shop.mesh", "/", "10.244.1.5:1")
	send(rt, "web.shop.mesh", "/", "10.244.1.8:1")
	send(rt, "api.shop.mesh", "/", "10.244.1.5:1")
	if n := len(edgeSamples(t, reg, "nodemesh_proxy_edge_http_requests_total")); n != 3 {
		t.Fatalf("%d series before the change, want 3", n)
	}
	// The bare pod leaves, api leaves, web's backend is renamed.
	next := tableOf(httpRoute("web", 80, backendOf("web-v2", 1, addr(be.srv))))
	next.Pods = clientPods[:3]
	if err := rt.Apply(next); err != nil {
		t.Fatal(err)
	}
	if got := edgeSamples(t, reg, "nodemesh_proxy_edge_http_requests_total"); len(got) != 0 {
		t.Errorf("series of a gone pod, service and backend remain: %v", got)
	}
	send(rt, "web.shop.mesh", "/", "10.244.1.5:1")
	send(rt, "web.shop.mesh", "/", "10.244.1.8:1") // no longer a pod: unknown
	got := edgeSamples(t, reg, "nodemesh_proxy_edge_http_requests_total")
	if got[edgeKey("shop", "Deployment/client", "client", "web", "web-v2", "2xx")] != 1 ||
		got[edgeKey(edges.UnknownValue, edges.UnknownValue, edges.UnknownValue, "web", "web-v2", "2xx")] != 1 || len(got) != 2 {
		t.Errorf("after the change: %v", got)
	}
}

func TestSplitWeightRatio(t *testing.T) {
	rt, reg := edgeRouter(t, Options{})
	web := httpRoute("web", 80, backendOf("web-v1", 80), backendOf("web-v2", 20))
	web8080 := httpRoute("web", 8080, backendOf("other", 1))
	web8080.Hosts = nil
	check := func(want map[string]float64) {
		t.Helper()
		got := map[string]float64{}
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "nodemesh_proxy_split_weight_ratio" {
				for _, m := range mf.GetMetric() {
					got[labelString(m)] = m.GetGauge().GetValue()
				}
			}
		}
		if len(got) != len(want) {
			t.Fatalf("weights %v, want %v", got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %v, want %v", k, got[k], v)
			}
		}
	}
	if err := rt.Apply(tableOf(web, web8080, httpRoute("api", 80, backendOf("api", 1)))); err != nil {
		t.Fatal(err)
	}
	check(map[string]float64{
		"backend=web-v1,namespace=shop,service=web": 0.8,
		"backend=web-v2,namespace=shop,service=web": 0.2,
		"backend=api,namespace=shop,service=api":    1,
	})
	// A weight changes, a backend joins and one leaves, a service leaves,
	// and a service whose weights sum to 0 has no series.
	web = httpRoute("web", 80, backendOf("web-v1", 50), backendOf("web-v3", 50))
	zero := httpRoute("zero", 80, backendOf("zero", 0))
	if err := rt.Apply(tableOf(web, web8080, zero)); err != nil {
		t.Fatal(err)
	}
	check(map[string]float64{
		"backend=web-v1,namespace=shop,service=web": 0.5,
		"backend=web-v3,namespace=shop,service=web": 0.5,
	})
}
