package controllerapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/controller"
)

func TestClientOverURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case controller.PathReadiness:
			w.WriteHeader(http.StatusServiceUnavailable) // not ready, with a body saying why
			_, _ = w.Write([]byte(`{"ready":false,"synced":true,"tableVersion":0}`))
		case controller.PathNodes:
			_, _ = w.Write([]byte(`{"tableVersion":5,"nodes":[{"node":"a","appliedVersion":4,"ready":true,"connected":true,"upToDate":false}]}`))
		case controller.PathTopology:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"no topology built yet"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := New(URL{Base: srv.URL + "/"})
	r, err := c.Readiness(t.Context())
	if err != nil || r.Ready || !r.Synced {
		t.Errorf("Readiness = %+v, %v; a 503 body is an answer", r, err)
	}
	n, err := c.Nodes(t.Context())
	if err != nil || n.TableVersion != 5 || len(n.Nodes) != 1 || n.Nodes[0].AppliedVersion != 4 {
		t.Errorf("Nodes = %+v, %v", n, err)
	}
	if _, err := c.Topology(t.Context()); err == nil || !strings.Contains(err.Error(), "HTTP 503: {\"error\":\"no topology built yet\"}") {
		t.Errorf("Topology error = %v", err)
	}
	if _, err := c.Errors(t.Context()); err == nil || !strings.Contains(err.Error(), srv.URL+"/api/status/errors: HTTP 404") {
		t.Errorf("Errors error = %v", err)
	}
}
