package harness

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestWhoAmIAnswersWithThePodAndTheRequest(t *testing.T) {
	cfg := podConfig{Namespace: "shop", Name: "web-1", Node: "node-a", IP: netip.MustParseAddr("10.244.1.2")}
	tests := []struct {
		name     string
		target   string
		wantCode int
		minDelay time.Duration
	}{
		{"plain", "/hello?x=1", http.StatusOK, 0},
		{"status code", "/status/503", http.StatusServiceUnavailable, 0},
		{"delay", "/?delay=50ms", http.StatusOK, 50 * time.Millisecond},
		{"status and delay", "/status/418?delay=20ms", http.StatusTeapot, 20 * time.Millisecond},
		{"bad status", "/status/abc", http.StatusBadRequest, 0},
		{"status out of range", "/status/99", http.StatusBadRequest, 0},
		{"bad delay", "/?delay=soon", http.StatusBadRequest, 0},
		{"delay too long", "/?delay=1h", http.StatusBadRequest, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "http://web.shop"+tt.target, nil)
			req.Header.Set("X-Test", "yes")
			rec := httptest.NewRecorder()
			began := time.Now()
			whoami(cfg, 80).ServeHTTP(rec, req)
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
			}
			if took := time.Since(began); took < tt.minDelay {
				t.Errorf("answered after %s, want at least %s", took, tt.minDelay)
			}
			if tt.wantCode == http.StatusBadRequest {
				return
			}
			var got WhoAmI
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("body is not a WhoAmI: %v: %s", err, rec.Body)
			}
			if got.Pod != "web-1" || got.Namespace != "shop" || got.Node != "node-a" || got.IP != "10.244.1.2" || got.Port != 80 {
				t.Errorf("answered as %+v", got)
			}
			if got.Request.Host != "web.shop" || got.Request.Method != http.MethodGet || got.Request.Headers.Get("X-Test") != "yes" {
				t.Errorf("saw request %+v", got.Request)
			}
		})
	}
}
