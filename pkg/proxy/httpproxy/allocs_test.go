package httpproxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// plainRequestAllocs is what one plain GET through the router to a backend
// on loopback allocates, the backend's own server included (it runs in this
// process), with a fresh cancelable context per request as a server gives.
// Measured 2026-12-06 with go1.26; docs/proxy.md (Performance) has the
// history. Registering the cancel callback on every request (45) or taking
// oxy's round-robin copy of the request (42) would exceed it. A new Go
// release may move it: measure again and say why in docs/proxy.md.
const plainRequestAllocs = 40

func TestPlainRequestAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts mean nothing under the race detector")
	}
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body100) }))
	defer be.Close()
	r := New(Options{})
	defer r.fwd.close()
	if err := r.Apply(tableOf(httpRoute("web", 80, backendOf("web", 1, strings.TrimPrefix(be.URL, "http://"))))); err != nil {
		t.Fatal(err)
	}
	base := httptest.NewRequest("GET", "http://web.shop.mesh/items?id=1", nil)
	base.RemoteAddr = "10.244.1.9:40000"
	base.RequestURI = "/items?id=1"
	srvCtx := context.WithValue(context.Background(), http.ServerContextKey, &http.Server{})
	w := &discardWriter{h: http.Header{}}
	n := testing.AllocsPerRun(500, func() {
		ctx, cancel := context.WithCancel(srvCtx)
		defer cancel()
		clear(w.h)
		r.ServeHTTP(w, base.WithContext(ctx))
		if w.code != http.StatusOK {
			t.Fatalf("status %d", w.code)
		}
	})
	if n > plainRequestAllocs {
		t.Errorf("a plain request allocates %v times, budget %d", n, plainRequestAllocs)
	}
}
