package accesslog

import (
	"io"
	"testing"
	"time"
)

// BenchmarkAppendJSON is the writer goroutine's cost of one HTTP entry:
// with the default cap of 1,000 entries a second, the log costs at most
// 1,000 times this per second of a core.
func BenchmarkAppendJSON(b *testing.B) {
	e := Entry{
		Time: time.Now(), Protocol: "http", SourceIP: "10.244.1.5:40000",
		SourceNamespace: "shop", SourceWorkload: "Deployment/client", SourceServiceAccount: "client",
		Namespace: "shop", Service: "web", Backend: "web-v2", Method: "GET", Host: "web.shop.mesh", Path: "/items/42",
		Code: 200, Duration: 1500 * time.Microsecond, BytesSent: 100, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
	}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendJSON(buf[:0])
		_, _ = io.Discard.Write(buf)
	}
}

// BenchmarkAllowSampledOut is the per-request cost when the log is on but
// the request is not sampled.
func BenchmarkAllowSampledOut(b *testing.B) {
	l := New(Options{Writer: io.Discard, SampleRatio: 0.01, MaxPerSecond: 1000})
	defer l.Close()
	for b.Loop() {
		l.Allow()
	}
}
