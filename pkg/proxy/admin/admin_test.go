package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/pkg/table"
)

func TestAdminEndpoints(t *testing.T) {
	var applied atomic.Pointer[table.Table]
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "nodemesh_proxy_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	srv := httptest.NewServer(Handler(Options{Applied: applied.Load, Gatherer: reg}))
	defer srv.Close()

	get := func(path string) (int, http.Header, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	before := []struct {
		path string
		code int
		body string
	}{
		{"/live", 200, "live"},
		{"/ready", 503, "no routing table applied yet"},
		{"/config", 503, "no routing table applied yet"},
		{"/metrics", 200, "nodemesh_proxy_test_total 3"},
		{"/nope", 404, ""},
	}
	for _, tt := range before {
		if code, _, body := get(tt.path); code != tt.code || !strings.Contains(body, tt.body) {
			t.Errorf("before a table: %s = %d %q, want %d %q", tt.path, code, body, tt.code, tt.body)
		}
	}

	applied.Store(&table.Table{Schema: table.SchemaVersion, Version: 42})
	if code, _, _ := get("/ready"); code != 200 {
		t.Errorf("/ready after a table = %d", code)
	}
	code, h, body := get("/config")
	if code != 200 || h.Get(HeaderVersion) != "42" || h.Get("Content-Type") != "application/json" {
		t.Fatalf("/config = %d %v", code, h)
	}
	if got, err := table.Decode([]byte(body)); err != nil || got.Version != 42 {
		t.Fatalf("/config body %q: %v", body, err)
	}
}

func TestPprofOnlyWhenAsked(t *testing.T) {
	for _, on := range []bool{false, true} {
		srv := httptest.NewServer(Handler(Options{Applied: func() *table.Table { return nil }, Gatherer: prometheus.NewRegistry(), Pprof: on}))
		for path, want := range map[string]string{"/debug/pprof/": "goroutine", "/debug/pprof/heap?debug=1": "heap profile"} {
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := resp.StatusCode == 200 && strings.Contains(string(b), want); got != on {
				t.Errorf("pprof %v: GET %s: %d %.60q", on, path, resp.StatusCode, b)
			}
		}
		srv.Close()
	}
}
