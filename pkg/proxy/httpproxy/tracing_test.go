package httpproxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestTraceContextPassesUnchanged: the proxy forwards W3C trace context
// and B3 headers as the client sent them, on a plain route and on one
// with retries (whose buffer copies the request), so traces continue
// through the mesh without the proxy taking part in them.
func TestTraceContextPassesUnchanged(t *testing.T) {
	trace := http.Header{
		"Traceparent":       {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"Tracestate":        {"congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7"},
		"B3":                {"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"},
		"X-B3-Traceid":      {"80f198ee56343ba864fe8b2a57d3eff7"},
		"X-B3-Spanid":       {"e457b5a2e4d86bd1"},
		"X-B3-Parentspanid": {"05e3ac9a4f6e3b90"},
		"X-B3-Sampled":      {"1"},
	}
	seen := make(chan http.Header, 1)
	be := newBackendFunc(t, func(_ http.ResponseWriter, r *http.Request) { seen <- r.Header.Clone() })
	for _, retries := range []int{0, 3} {
		rt, _ := edgeRouter(t, Options{})
		route := httpRoute("web", 80, backendOf("web", 1, addr(be)))
		route.Middleware.RetryAttempts = retries
		if err := rt.Apply(tableOf(route)); err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodGet, "http://web.shop.mesh/", nil)
		for k, v := range trace {
			req.Header[k] = v
		}
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("retries=%d: %d %s", retries, w.Code, w.Body)
		}
		got := <-seen
		for k, want := range trace {
			if v := got.Values(k); len(v) != len(want) || v[0] != want[0] || v[len(v)-1] != want[len(want)-1] {
				t.Errorf("retries=%d: backend saw %s %q, client sent %q", retries, k, v, want)
			}
		}
	}
}

func TestTraceIDForTheAccessLog(t *testing.T) {
	for _, tc := range []struct {
		h    http.Header
		want string
	}{
		{http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}, "4bf92f3577b34da6a3ce929d0e0e4736"},
		{http.Header{"X-B3-Traceid": {"80f198ee56343ba8"}}, "80f198ee56343ba8"},
		{http.Header{"B3": {"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"}}, "80f198ee56343ba864fe8b2a57d3eff7"},
		{http.Header{"Traceparent": {"garbage"}}, ""},
		{http.Header{}, ""},
	} {
		if got := traceID(tc.h); got != tc.want {
			t.Errorf("traceID(%v) = %q, want %q", tc.h, got, tc.want)
		}
	}
}
