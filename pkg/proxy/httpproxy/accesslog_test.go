package httpproxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/pkg/proxy/accesslog"
	"github.com/nodemesh/nodemesh/pkg/proxy/accesslog/accesslogtest"
)

// TestAccessLogEntryPerRequest: with the access log on (and edge metrics
// off), a request writes one JSON line naming its source workload, the
// split backend that answered, the status, bytes, retries and trace id.
func TestAccessLogEntryPerRequest(t *testing.T) {
	dead := deadAddr(t)
	v2 := newBackend(t, "web-v2")
	var out accesslogtest.Buffer
	log := accesslog.New(accesslog.Options{Writer: &out})
	rt := New(Options{AccessLog: log})
	t.Cleanup(rt.Close)
	// web-v2 has a dead endpoint first: the retry after the failed connect
	// is counted.
	route := httpRoute("web", 80, backendOf("web-v2", 1, dead, addr(v2.srv)))
	route.Middleware.RetryAttempts = 3
	tb := tableOf(route)
	tb.Pods = clientPods
	if err := rt.Apply(tb); err != nil {
		t.Fatal(err)
	}
	var last *httptest.ResponseRecorder
	for range 2 { // round robin: at least one starts with the dead endpoint
		req := httptest.NewRequest(http.MethodPost, "http://web.shop.mesh/orders?id=1", strings.NewReader("hello"))
		req.RemoteAddr = "10.244.1.5:40000"
		req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		req.Header.Set("Idempotency-Key", "k") // a POST may be retried
		last = httptest.NewRecorder()
		rt.ServeHTTP(last, req)
		if last.Code != http.StatusOK {
			t.Fatalf("%d %s", last.Code, last.Body)
		}
	}
	log.Close()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", out.String())
	}
	retries := 0
	for _, line := range lines {
		var e struct {
			Time        time.Time
			Protocol    string
			Source      struct{ IP, Namespace, Workload, ServiceAccount string }
			Destination struct{ Namespace, Service, Backend string }
			Method      string
			Path        string
			Code        int
			BytesSent   int64
			BytesRecv   int64 `json:"bytesReceived"`
			Retries     int
			TraceID     string
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		retries += e.Retries
		if e.Protocol != "http" || e.Source.Workload != "Deployment/client" || e.Source.ServiceAccount != "client" || e.Source.IP != "10.244.1.5:40000" ||
			e.Destination.Service != "web" || e.Destination.Backend != "web-v2" || e.Method != "POST" || e.Path != "/orders" ||
			e.Code != 200 || e.BytesSent != int64(last.Body.Len()) || e.BytesRecv != 5 || e.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || time.Since(e.Time) > time.Minute {
			t.Errorf("entry %s", line)
		}
	}
	if retries < 1 || retries > 2 {
		t.Errorf("retries over both requests: %d, want 1 or 2 (each that met the dead endpoint first retried once)", retries)
	}
}
