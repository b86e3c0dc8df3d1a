package proxy_test

import (
	"encoding/json"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/rest"

	"github.com/nodemesh/nodemesh/pkg/controller"
	"github.com/nodemesh/nodemesh/pkg/proxy"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// TestDashboardQueriesOnlyServedMetrics reads every query of
// docs/grafana-dashboard.json and checks that each metric it names is
// served by a proxy's /metrics or the controller's: a renamed metric must
// not leave an empty panel behind.
func TestDashboardQueriesOnlyServedMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	var queries []string
	collectQueries(dash, &queries)
	if len(queries) < 10 {
		t.Fatalf("found only %d queries in the dashboard", len(queries))
	}
	served := proxyFamilies(t)
	for name, typ := range controllerFamilies(t) {
		served[name] = typ
	}
	names := regexp.MustCompile(`\b(?:nodemesh|process|go)_[a-z0-9_]+\b`)
	checked := 0
	for _, q := range queries {
		for _, name := range names.FindAllString(q, -1) {
			checked++
			if !isServed(served, name) {
				t.Errorf("the dashboard queries %s, which neither the proxy nor the controller serves:\n  %s", name, q)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no metric name found in the dashboard's queries")
	}
}

// collectQueries gathers the PromQL of panels (expr) and variables (query,
// definition).
func collectQueries(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && (k == "expr" || k == "query" || k == "definition") {
				*out = append(*out, s)
				continue
			}
			collectQueries(x, out)
		}
	case []any:
		for _, x := range v {
			collectQueries(x, out)
		}
	}
}

func isServed(served map[string]string, name string) bool {
	if _, ok := served[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && (served[base] == "HISTOGRAM" || (suffix != "_bucket" && served[base] == "SUMMARY")) {
			return true
		}
	}
	return false
}

// proxyFamilies are the metric families of a proxy that applied a table
// with HTTP, TCP and UDP services and access control on, and refused one
// request (every family with labels has series then).
func proxyFamilies(t *testing.T) map[string]string {
	t.Helper()
	cfg := proxy.DefaultConfig()
	cfg.TableFile = "unused.json"
	cfg.ListenAddress = "127.0.0.1"
	p, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	svc := table.ServiceRef{Namespace: "shop", Name: "web"}
	backends := []table.Backend{{Service: svc, Weight: 1, Endpoints: []table.Endpoint{{Address: "127.0.0.1:9"}}}}
	tb := &table.Table{Schema: table.SchemaVersion, Version: 1, ACL: true,
		HTTP: []table.HTTPRoute{{Service: svc, Port: 80, Hosts: []string{"web.shop.mesh"}, DefaultPort: true, Scheme: table.SchemeHTTP, Backends: backends}},
		TCP:  []table.StreamRoute{{Service: svc, Port: 5432, ProxyPort: freePort(t, "tcp"), Backends: backends}},
		UDP:  []table.StreamRoute{{Service: svc, Port: 53, ProxyPort: freePort(t, "udp"), Backends: backends}},
	}
	if err := p.Apply(tb); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "http://web.shop.mesh/", nil)
	w := httptest.NewRecorder()
	p.HTTPHandler().ServeHTTP(w, req)
	if w.Code != http.StatusForbidden {
		t.Fatalf("a request from no known pod with access control on: %d", w.Code)
	}
	// A request the route serves, for the series that exist only once a
	// service has had traffic (its duration histogram); nothing should
	// listen on the endpoint (the discard port), so it is answered 502.
	open := *tb
	open.Version, open.ACL = 2, false
	if err := p.Apply(&open); err != nil {
		t.Fatal(err)
	}
	w = httptest.NewRecorder()
	p.HTTPHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://web.shop.mesh/", nil))
	if w.Code == http.StatusForbidden {
		t.Fatalf("a request with access control off: %d", w.Code)
	}
	mfs, err := p.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf.GetType().String()
	}
	return out
}

// controllerFamilies are the metric families on a controller's /metrics
// (it needs no apiserver to serve them).
func controllerFamilies(t *testing.T) map[string]string {
	t.Helper()
	cfg := controller.DefaultConfig()
	cfg.APIPort = 0
	c, err := controller.New(cfg, &rest.Config{Host: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	c.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, controller.PathMetrics, nil))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for name, mf := range mfs {
		out[name] = mf.GetType().String()
	}
	if !slices.ContainsFunc(slices.Collect(maps.Keys(out)), func(n string) bool { return strings.HasPrefix(n, "nodemesh_controller_") }) {
		t.Fatalf("the controller's /metrics has no nodemesh_controller_ family: %v", out)
	}
	return out
}

// freePort returns a loopback port of network that was free a moment ago.
func freePort(t *testing.T, network string) int32 {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return int32(c.LocalAddr().(*net.UDPAddr).Port)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}
