package proxy

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// TestShutdownDrains checks the lame-duck shutdown: after the stop signal
// /ready fails at once while mesh traffic is still served, and the
// listeners close only after ShutdownDelay.
func TestShutdownDrains(t *testing.T) {
	v1 := webBackend(t, "v1")
	path := filepath.Join(t.TempDir(), "table.json")
	b, _ := table.Encode(meshTable(0, v1, nil, nil))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.TableFile = path
	cfg.TablePollInterval = 10 * time.Millisecond
	cfg.ShutdownDelay = 600 * time.Millisecond
	p := newTestProxy(t, cfg)
	h, a, err := p.Listen()
	if err != nil {
		t.Fatal(err)
	}
	httpURL, adminURL := "http://"+h.String(), "http://"+a.String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	eventually(t, "ready", func() bool { c, _ := fetch(t, adminURL+"/ready", ""); return c == 200 })

	stopped := time.Now()
	cancel()
	eventually(t, "/ready failing while draining", func() bool { c, _ := fetch(t, adminURL+"/ready", ""); return c == http.StatusServiceUnavailable })
	if code, body := fetch(t, httpURL+"/", "web.shop.mesh"); code != 200 || body != "v1" {
		t.Fatalf("during the drain the proxy answered %d %q, want 200 v1", code, body)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the drain")
	}
	if took := time.Since(stopped); took < cfg.ShutdownDelay {
		t.Fatalf("listeners closed after %s, before the %s drain", took, cfg.ShutdownDelay)
	}
	if _, err := http.Get(httpURL + "/"); err == nil {
		t.Fatal("the HTTP listener still accepts after shutdown")
	}
}
