package httpproxy

import (
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/pkg/proxy/accesslog"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// The edge benchmarks are BenchmarkInMemoryChain with edge metrics and the
// access log on, to compare with it and with BenchmarkInMemoryBareOxy
// (docs/observability.md reports the figures):
//
//	go test -run XXX -bench 'InMemory' -benchmem -cpu 1 ./pkg/proxy/httpproxy/

// edgeChainRouter is chainRouter's single route with opts, a table that
// knows the benchmark's client (10.244.1.9, see runHandler) among 1,000
// pods, and a registry, as the proxy has one.
func edgeChainRouter(b *testing.B, opts Options) *Router {
	opts.Registerer = prometheus.NewRegistry()
	r := New(opts)
	for _, f := range r.fwd.byScheme {
		f.Transport = cannedTransport{}
	}
	tb := tableOf(httpRoute("web", 80, backendOf("web", 1, "10.244.1.1:8080")))
	for i := range 1000 {
		tb.Pods = append(tb.Pods, table.Pod{
			IP: "10.244." + itoa(1+i/250) + "." + itoa(i%250+1), Namespace: "shop", Name: "p" + itoa(i),
			ServiceAccount: "sa" + itoa(i%10), Workload: "Deployment/w" + itoa(i%10),
		})
	}
	if err := r.Apply(tb); err != nil {
		b.Fatal(err)
	}
	return r
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var buf [20]byte
	n := len(buf)
	for ; i > 0; i /= 10 {
		n--
		buf[n] = byte('0' + i%10)
	}
	return string(buf[n:])
}

// BenchmarkInMemoryChainPods: the same router, table and registry as
// BenchmarkInMemoryChainEdges with edge metrics off, to isolate their cost.
func BenchmarkInMemoryChainPods(b *testing.B) {
	runHandler(b, edgeChainRouter(b, Options{}))
}

// BenchmarkInMemoryChainEdges: the chain with edge metrics on.
func BenchmarkInMemoryChainEdges(b *testing.B) {
	runHandler(b, edgeChainRouter(b, Options{EdgeMetrics: true}))
}

// BenchmarkInMemoryChainEdgesRetry: edge metrics on a route with retries,
// where the backend mark rides in the request context.
func BenchmarkInMemoryChainEdgesRetry(b *testing.B) {
	opts := Options{EdgeMetrics: true, Registerer: prometheus.NewRegistry()}
	r := New(opts)
	for _, f := range r.fwd.byScheme {
		f.Transport = cannedTransport{}
	}
	route := httpRoute("web", 80, backendOf("web", 1, "10.244.1.1:8080"))
	route.Middleware.RetryAttempts = 2
	tb := tableOf(route)
	tb.Pods = []table.Pod{{IP: "10.244.1.9", Namespace: "shop", Name: "c", ServiceAccount: "c", Workload: "Deployment/c"}}
	if err := r.Apply(tb); err != nil {
		b.Fatal(err)
	}
	runHandler(b, r)
}

// BenchmarkInMemoryChainRetry is the same route without edge metrics.
func BenchmarkInMemoryChainRetry(b *testing.B) {
	r := New(Options{})
	for _, f := range r.fwd.byScheme {
		f.Transport = cannedTransport{}
	}
	route := httpRoute("web", 80, backendOf("web", 1, "10.244.1.1:8080"))
	route.Middleware.RetryAttempts = 2
	if err := r.Apply(tableOf(route)); err != nil {
		b.Fatal(err)
	}
	runHandler(b, r)
}

// BenchmarkInMemoryChainEdgesAccessLogDefault: edge metrics and the access
// log with the proxy's defaults (every request sampled, at most
// proxy.DefaultAccessLogMaxPerSecond, 1,000, written per second).
func BenchmarkInMemoryChainEdgesAccessLogDefault(b *testing.B) {
	l := accesslog.New(accesslog.Options{Writer: io.Discard, MaxPerSecond: 1000})
	defer l.Close()
	runHandler(b, edgeChainRouter(b, Options{EdgeMetrics: true, AccessLog: l}))
}

// BenchmarkInMemoryChainEdgesAccessLogAll: every request logged, no cap:
// the worst case, to show what the cap buys.
func BenchmarkInMemoryChainEdgesAccessLogAll(b *testing.B) {
	l := accesslog.New(accesslog.Options{Writer: io.Discard, QueueSize: 1 << 16})
	defer l.Close()
	runHandler(b, edgeChainRouter(b, Options{EdgeMetrics: true, AccessLog: l}))
}

// BenchmarkEdgeDone is the edge metrics' own per-request work: naming the
// source among 1,000 pods, finding the cached children, counting and
// observing.
func BenchmarkEdgeDone(b *testing.B) {
	rt := edgeChainRouter(b, Options{EdgeMetrics: true})
	var es *edgeService
	for _, r := range rt.current.Load().routes {
		es = r.metrics.edge
	}
	req := httptest.NewRequest("GET", "http://web.shop.mesh/", nil)
	req.RemoteAddr = "10.244.1.9:40000"
	mark := &edgeMark{backend: "web"}
	start := time.Now()
	b.ReportAllocs()
	c0 := cpuTime()
	for b.Loop() {
		es.done(req, mark, 200, 100, start, time.Millisecond)
	}
	b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
}
