package httpproxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/vulcand/oxy/v2/forward"
	"github.com/vulcand/oxy/v2/roundrobin"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// The benchmarks compare the proxy's whole chain (Host routing, metrics,
// weighted backend choice, oxy round robin, oxy forward) with a bare oxy
// round robin + forward that has the same pooled buffers. The "InMemory"
// pair answers from a RoundTripper so only the proxy's own work is
// measured; the "Loopback" pair forwards to a real backend on 127.0.0.1.
//
//	go test -run XXX -bench . -benchmem ./pkg/proxy/httpproxy/

var body100 = bytes.Repeat([]byte("x"), 100)

// cannedTransport answers every request with 200 and a 100-byte body.
type cannedTransport struct{}

func (cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Request: r, ContentLength: 100,
		Header: http.Header{"Content-Length": {"100"}, "Content-Type": {"text/plain"}},
		Body:   io.NopCloser(bytes.NewReader(body100)),
	}, nil
}

// discardWriter is a reusable ResponseWriter.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(c int)           { d.code = c }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

// Flush: the proxy's server can flush, and the forwarder flushes a plain
// answer when it is written (h1Forwarder.ServeHTTP).
func (d *discardWriter) Flush() {}

func bareOxy(b *testing.B, rt http.RoundTripper, endpoint string) http.Handler {
	fwd := forward.New(true)
	fwd.BufferPool = newBufferPool()
	fwd.Transport = rt
	lb, err := roundrobin.New(fwd)
	if err != nil {
		b.Fatal(err)
	}
	u, _ := url.Parse("http://" + endpoint)
	if err := lb.UpsertServer(u); err != nil {
		b.Fatal(err)
	}
	return lb
}

// chainRouter returns a Router serving routes plain services, one of them
// web.shop.mesh, every route with the same endpoint.
func chainRouter(b *testing.B, rt http.RoundTripper, endpoint string, routes int) *Router {
	r := New(Options{})
	if rt != nil {
		for _, f := range r.fwd.byScheme {
			f.Transport = rt
		}
	}
	tb := tableOf(httpRoute("web", 80, backendOf("web", 1, endpoint)))
	for i := 1; i < routes; i++ {
		tb.HTTP = append(tb.HTTP, httpRoute(fmt.Sprintf("svc%d", i), 80, backendOf(fmt.Sprintf("svc%d", i), 1, endpoint)))
	}
	if err := r.Apply(tb); err != nil {
		b.Fatal(err)
	}
	return r
}

func runHandler(b *testing.B, h http.Handler) {
	req := httptest.NewRequest("GET", "http://web.shop.mesh/items?id=1", nil)
	req.RemoteAddr = "10.244.1.9:40000"
	req.RequestURI = "/items?id=1" // origin form, as clients send it
	// A server's requests carry a cancelable context; the forwarders and
	// transports take other paths for one that cannot be cancelled.
	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	req = req.WithContext(ctx)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gc0 := ms.NumGC
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		clear(w.h)
		h.ServeHTTP(w, req)
		if w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
	// CPU time rather than wall time is the figure to compare on a shared
	// machine: other processes stretch ns/op but not the CPU this one used.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	// GC cycles per 1,000 requests: the figure GOGC moves (see
	// proxy.DefaultGCPercent).
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.NumGC-gc0)*1000/float64(b.N), "gc/1k-op")
}

// cpuTime returns the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func BenchmarkInMemoryBareOxy(b *testing.B) {
	runHandler(b, bareOxy(b, cannedTransport{}, "10.244.1.1:8080"))
}

func BenchmarkInMemoryChain(b *testing.B) {
	runHandler(b, chainRouter(b, cannedTransport{}, "10.244.1.1:8080", 1))
}

func BenchmarkInMemoryChain1000Routes(b *testing.B) {
	runHandler(b, chainRouter(b, cannedTransport{}, "10.244.1.1:8080", 1000))
}

func loopbackBackend(b *testing.B) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body100) }))
	b.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func loopbackTransport() *http.Transport {
	return &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
}

func BenchmarkLoopbackBareOxy(b *testing.B) {
	tr := loopbackTransport()
	defer tr.CloseIdleConnections()
	runHandler(b, bareOxy(b, tr, loopbackBackend(b)))
}

func BenchmarkLoopbackChain(b *testing.B) {
	tr := loopbackTransport()
	defer tr.CloseIdleConnections()
	runHandler(b, chainRouter(b, tr, loopbackBackend(b), 1))
}

// BenchmarkLoopbackChainOwnTransport is the chain with the router's own
// backend transport (h1transport.go), as the proxy runs it; the two above
// share net/http's.
func BenchmarkLoopbackChainOwnTransport(b *testing.B) {
	r := chainRouter(b, nil, loopbackBackend(b), 1)
	defer r.fwd.close()
	runHandler(b, r)
}

func BenchmarkRouteLookup(b *testing.B) {
	r := chainRouter(b, cannedTransport{}, "10.244.1.1:8080", 1000)
	p := r.current.Load()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		h, port := splitHost("svc500.shop.mesh:80")
		if p.lookup(h, port) == nil {
			b.Fatal("no route")
		}
	}
}

// largeTable has 1,000 HTTP services with 10 endpoints each; gen changes
// every endpoint address so a reload rebuilds every route.
func largeTable(gen int) *table.Table {
	tb := &table.Table{Schema: table.SchemaVersion}
	for i := 0; i < 1000; i++ {
		var eps []string
		for j := 0; j < 10; j++ {
			eps = append(eps, fmt.Sprintf("10.%d.%d.%d:%d", 1+gen%200, i/250, (i%250)+1, 8000+j))
		}
		name := fmt.Sprintf("svc%d", i)
		r := httpRoute(name, 80, backendOf(name, 1, eps...))
		r.Hosts = append(r.Hosts, fmt.Sprintf("10.96.%d.%d", i/250, i%250+1))
		tb.HTTP = append(tb.HTTP, r)
	}
	return tb
}

// BenchmarkReloadLargeTable measures validating and applying a table of
// 1,000 services and 10,000 endpoints in which every route changed.
func BenchmarkReloadLargeTable(b *testing.B) {
	r := New(Options{})
	tables := []*table.Table{largeTable(0), largeTable(1)}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		tb := tables[i%2]
		if err := table.Validate(tb); err != nil {
			b.Fatal(err)
		}
		if err := r.Apply(tb); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkReloadLargeTableOneChange is the common case: one route of the
// large table changed.
func BenchmarkReloadLargeTableOneChange(b *testing.B) {
	r := New(Options{})
	a, c := largeTable(0), largeTable(0)
	c.HTTP[500].Backends[0].Weight = 2
	tables := []*table.Table{a, c}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		tb := tables[i%2]
		if err := table.Validate(tb); err != nil {
			b.Fatal(err)
		}
		if err := r.Apply(tb); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkResponseHeaderFields compares the server's header writer with
// net/http's WriteSubset, which it replaces, on the benchmark backend's
// response header.
func BenchmarkResponseHeaderFields(b *testing.B) {
	h := http.Header{
		"Content-Type":   {"text/plain; charset=utf-8"},
		"Content-Length": {"100"},
		"Date":           {"Sun, 06 Dec 2026 17:00:00 GMT"},
	}
	bw := bufio.NewWriterSize(io.Discard, 4096)
	b.Run("nodemesh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			writeHeaderFields(bw, h, nil)
			bw.Flush()
		}
	})
	b.Run("net-http", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h.WriteSubset(bw, nil)
			bw.Flush()
		}
	})
}
