package accesslog

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodemesh/nodemesh/pkg/proxy/accesslog/accesslogtest"
)

func TestEntryIsOneValidJSONLine(t *testing.T) {
	var out accesslogtest.Buffer
	l := New(Options{Writer: &out})
	start := time.Date(2026, 11, 25, 8, 0, 0, 123456789, time.UTC)
	e := Entry{
		Time: start, Protocol: "http", SourceIP: "10.244.1.5:40000",
		SourceNamespace: "shop", SourceWorkload: "Deployment/client", SourceServiceAccount: "client",
		Namespace: "shop", Service: "web", Backend: "web-v2",
		Method: "GET", Host: "web.shop.mesh", Path: "/a\"b\n\x00\xff/é",
		Code: 200, Duration: 1500 * time.Microsecond, BytesSent: 100, Retries: 1, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
	}
	if !l.Allow() {
		t.Fatal("an unsampled, uncapped logger must allow")
	}
	l.Log(&e)
	l.Close()
	line := out.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("want exactly one line: %q", line)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	want := map[string]any{
		"time": "2026-11-25T08:00:00.123456789Z", "protocol": "http",
		"source":      map[string]any{"ip": "10.244.1.5:40000", "namespace": "shop", "workload": "Deployment/client", "serviceAccount": "client"},
		"destination": map[string]any{"namespace": "shop", "service": "web", "backend": "web-v2"},
		"method":      "GET", "host": "web.shop.mesh", "path": "/a\"b\n\x00\ufffd/é",
		"code": 200.0, "durationSeconds": 0.0015, "bytesReceived": 0.0, "bytesSent": 100.0, "retries": 1.0,
		"traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if string(gb) != string(wb) {
		t.Errorf("entry\n got %s\nwant %s", gb, wb)
	}
}

func TestSamplingAndRateCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	l := New(Options{Writer: &accesslogtest.Buffer{}, SampleRatio: 0.1, MaxPerSecond: 5, Registerer: reg, manualReset: true})
	defer l.Close()
	allowed := 0
	for range 1000 { // 100 sampled in, 5 within the cap
		if l.Allow() {
			allowed++
		}
	}
	if allowed != 5 {
		t.Errorf("allowed %d of 1000 in one second, want 5", allowed)
	}
	l.inSec.Store(0) // what the ticker does each second
	allowed = 0
	for range 30 {
		if l.Allow() {
			allowed++
		}
	}
	if allowed != 3 {
		t.Errorf("allowed %d of 30 in the next second, want 3 (every 10th)", allowed)
	}
	if got := testutil.ToFloat64(l.overRate); got != 95 {
		t.Errorf("rate_limit drops = %v, want 95", got)
	}
}

func TestFullQueueDropsInsteadOfBlocking(t *testing.T) {
	block := make(chan struct{})
	writing := make(chan struct{}, 1)
	l := New(Options{Writer: writerFunc(func(p []byte) (int, error) {
		select {
		case writing <- struct{}{}:
		default:
		}
		<-block
		return len(p), nil
	}), QueueSize: 2})
	// The first entry is flushed at once (nothing else waits), and the
	// writer then hangs in Write: a stuck disk. Only after that is the
	// count exact; the writer may otherwise take entries off the queue
	// while they are logged.
	l.Log(&Entry{Protocol: "tcp"})
	<-writing
	for range 10 {
		l.Log(&Entry{Protocol: "tcp"}) // must not block
	}
	if got := testutil.ToFloat64(l.queueFull); got != 8 {
		t.Errorf("queue_full drops = %v, want 8 of 10 with a queue of 2 and the writer stuck", got)
	}
	close(block)
	l.Close()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestNilLoggerIsOff(t *testing.T) {
	var l *Logger
	if l.Allow() {
		t.Error("a nil logger must not allow")
	}
	if err := l.Close(); err != nil {
		t.Error(err)
	}
}

func TestLogAfterCloseIsDropped(t *testing.T) {
	var out accesslogtest.Buffer
	l := New(Options{Writer: &out})
	l.Close()
	l.Log(&Entry{Protocol: "http"}) // a request that outlived shutdown: no panic
	if out.String() != "" {
		t.Errorf("written after Close: %q", out.String())
	}
}
