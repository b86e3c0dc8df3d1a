package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/nodemesh/nodemesh/pkg/distribution"
	"github.com/nodemesh/nodemesh/pkg/table"
)

func init() { logOutput = io.Discard }

func testConfig() Config {
	c := DefaultConfig()
	c.ListenAddress = "127.0.0.1"
	c.HTTPPort, c.AdminPort = 0, 0
	c.TableFile = "unused"
	c.TCPConnectTimeout = time.Second
	c.ShutdownDelay = 0 // TestShutdownDrains sets its own
	return c
}

func newTestProxy(t *testing.T, cfg Config) *Proxy {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// freePort returns a loopback port that was free a moment ago.
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

func webBackend(t *testing.T, name string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) }))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func stream(name string, proxyPort int32, endpoint string) table.StreamRoute {
	return table.StreamRoute{
		Service: table.ServiceRef{Namespace: "shop", Name: name}, Port: 1000, ProxyPort: proxyPort,
		Backends: []table.Backend{{Service: table.ServiceRef{Namespace: "shop", Name: name}, Weight: 1, Endpoints: []table.Endpoint{{Address: endpoint}}}},
	}
}

func meshTable(version uint64, backend string, tcp, udp []table.StreamRoute) *table.Table {
	return &table.Table{Schema: table.SchemaVersion, Version: version, HTTP: []table.HTTPRoute{{
		Service: table.ServiceRef{Namespace: "shop", Name: "web"}, Port: 80, Hosts: []string{"web.shop.mesh"},
		DefaultPort: true, Scheme: table.SchemeHTTP,
		Backends: []table.Backend{{Service: table.ServiceRef{Namespace: "shop", Name: "web"}, Weight: 1, Endpoints: []table.Endpoint{{Address: backend}}}},
	}}, TCP: tcp, UDP: udp}
}

// httpGet sends a request for web.shop.mesh through the proxy's router.
func httpGet(t *testing.T, p *Proxy) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "http://web.shop.mesh/", nil)
	p.HTTPHandler().ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func tcpListening(port int32) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestApplyIsAllOrNothing(t *testing.T) {
	v1, v2 := webBackend(t, "v1"), webBackend(t, "v2")
	tcpOld, tcpNew, udpNew := freePort(t, "tcp"), freePort(t, "tcp"), freePort(t, "udp")
	p := newTestProxy(t, testConfig())
	good := meshTable(1, v1, []table.StreamRoute{stream("db", tcpOld, v1)}, nil)
	if err := p.Apply(good); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	// A UDP port someone else holds makes the UDP manager fail after the
	// TCP manager already applied the new table.
	busy, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", udpNew))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	invalid := meshTable(3, v2, nil, nil)
	invalid.HTTP[0].Scheme = "gopher"
	tests := []struct {
		name string
		t    *table.Table
		want string
	}{
		{"udp port busy", meshTable(2, v2, []table.StreamRoute{stream("db", tcpNew, v2)}, []table.StreamRoute{stream("dns", udpNew, v2)}), "table version 2"},
		{"invalid table", invalid, `unknown scheme "gopher"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Apply(tt.t)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Apply = %v, want an error containing %q", err, tt.want)
			}
			if p.Applied() != good {
				t.Fatal("the applied table changed")
			}
			if code, body := httpGet(t, p); code != 200 || body != "v1" {
				t.Fatalf("HTTP now serves %d %q, want the old v1", code, body)
			}
			if !tcpListening(tcpOld) {
				t.Fatal("the old TCP port no longer listens")
			}
			if tcpListening(tcpNew) {
				t.Fatal("the new TCP port was left open: TCP was not rolled back")
			}
		})
	}
	if got := testutil.ToFloat64(p.metrics.errors); got != 2 {
		t.Errorf("reload errors = %v, want 2", got)
	}
	if got := testutil.ToFloat64(p.metrics.version); got != 1 {
		t.Errorf("table version gauge = %v, want 1", got)
	}
}

func TestFirstTableRollbackClosesWhatItOpened(t *testing.T) {
	be := webBackend(t, "v1")
	tcpPort, udpPort := freePort(t, "tcp"), freePort(t, "udp")
	busy, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", udpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	p := newTestProxy(t, testConfig())
	if err := p.Apply(meshTable(1, be, []table.StreamRoute{stream("db", tcpPort, be)}, []table.StreamRoute{stream("dns", udpPort, be)})); err == nil {
		t.Fatal("Apply succeeded on a busy UDP port")
	}
	if p.Applied() != nil || tcpListening(tcpPort) {
		t.Fatal("a failed first table left state behind")
	}
	if code, _ := httpGet(t, p); code != 404 {
		t.Fatalf("HTTP serves %d before any table applied", code)
	}
}

// runProxy runs p until the test ends and returns its HTTP and admin URLs.
func runProxy(t *testing.T, p *Proxy) (string, string) {
	t.Helper()
	h, a, err := p.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not return")
		}
	})
	return "http://" + h.String(), "http://" + a.String()
}

func fetch(t *testing.T, url, host string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if host != "" {
		req.Host = host
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually retries f for up to 10 s.
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunFromTableFile(t *testing.T) {
	v1, v2 := webBackend(t, "v1"), webBackend(t, "v2")
	path := filepath.Join(t.TempDir(), "table.json")
	cfg := testConfig()
	cfg.TableFile = path
	cfg.TablePollInterval = 10 * time.Millisecond
	p := newTestProxy(t, cfg)
	httpURL, adminURL := runProxy(t, p)

	if code, _ := fetch(t, adminURL+"/ready", ""); code != 503 {
		t.Fatalf("/ready before any table = %d", code)
	}
	write := func(tb *table.Table) {
		b, _ := table.Encode(tb)
		if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	write(meshTable(0, v1, nil, nil))
	eventually(t, "ready after the file appears", func() bool { c, _ := fetch(t, adminURL+"/ready", ""); return c == 200 })
	if code, body := fetch(t, httpURL+"/", "web.shop.mesh"); code != 200 || body != "v1" {
		t.Fatalf("through the proxy: %d %q", code, body)
	}
	write(meshTable(0, v2, nil, nil))
	eventually(t, "new file content served", func() bool { _, b := fetch(t, httpURL+"/", "web.shop.mesh"); return b == "v2" })

	if err := os.WriteFile(path, []byte(`{"schema":1,"http":[`), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "garbage counted as a reload error", func() bool { return testutil.ToFloat64(p.metrics.errors) >= 1 })
	if _, body := fetch(t, httpURL+"/", "web.shop.mesh"); body != "v2" {
		t.Fatalf("a garbage file replaced the table: %q", body)
	}
	if code, body := fetch(t, adminURL+"/config", ""); code != 200 || !strings.Contains(body, v2) {
		t.Fatalf("/config = %d %q", code, body)
	}
	if _, body := fetch(t, adminURL+"/metrics", ""); !strings.Contains(body, "nodemesh_proxy_reloads_total 2") ||
		!strings.Contains(body, `nodemesh_proxy_http_requests_total{code="200",method="GET",namespace="shop",service="web"}`) {
		t.Fatalf("/metrics lacks the reload or request metrics:\n%s", body)
	}
	// Two tables and the garbage were decoded, and timed.
	if n := sampleCount(t, p.metrics.decode); n < 3 {
		t.Errorf("decode duration has %d samples, want at least 3", n)
	}
}

// sampleCount is the number of observations of a histogram.
func sampleCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func TestRunFromController(t *testing.T) {
	v1, v2 := webBackend(t, "v1"), webBackend(t, "v2")
	srv := distribution.NewServer(distribution.ServerOptions{InitialVersion: 100})
	srv.Publish(meshTable(0, v1, nil, nil))
	ctl := httptest.NewServer(srv)
	defer ctl.Close()
	cfg := testConfig()
	cfg.TableFile, cfg.ControllerURL, cfg.Node = "", ctl.URL, "node-a"
	cfg.WatchWait = time.Second
	p := newTestProxy(t, cfg)
	httpURL, adminURL := runProxy(t, p)

	eventually(t, "ready", func() bool { c, _ := fetch(t, adminURL+"/ready", ""); return c == 200 })
	if _, body := fetch(t, httpURL+"/", "web.shop.mesh"); body != "v1" {
		t.Fatalf("through the proxy: %q", body)
	}
	srv.Publish(meshTable(0, v2, nil, nil))
	eventually(t, "published table served", func() bool { _, b := fetch(t, httpURL+"/", "web.shop.mesh"); return b == "v2" })
	eventually(t, "node reports its applied version", func() bool {
		n := srv.Nodes()
		return len(n) == 1 && n[0].Node == "node-a" && n[0].AppliedVersion == 101 && n[0].Ready
	})
	if got := testutil.ToFloat64(p.metrics.version); got != 101 {
		t.Errorf("table version gauge = %v, want 101", got)
	}
	if n := sampleCount(t, p.metrics.decode); n < 2 {
		t.Errorf("decode duration has %d samples, want one per table received (2)", n)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Config)
		want  string
		valid bool
	}{
		{"defaults with a file", func(c *Config) { c.TableFile = "t.json" }, "", true},
		{"no source", func(c *Config) {}, "exactly one of controller-url and table-file", false},
		{"two sources", func(c *Config) { c.TableFile, c.ControllerURL = "t.json", "http://c:9000" }, "exactly one", false},
		{"same ports", func(c *Config) { c.TableFile = "t"; c.AdminPort = 7000 }, "both 7000", false},
		{"bad port", func(c *Config) { c.TableFile = "t"; c.HTTPPort = 70000 }, "http-port 70000", false},
		{"gc zero", func(c *Config) { c.TableFile = "t"; c.GCPercent = 0 }, "gc-percent 0", false},
		{"bad log level", func(c *Config) { c.TableFile = "t"; c.LogLevel = "loud" }, `log-level "loud"`, false},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		tt.edit(&c)
		err := c.Validate()
		if tt.valid != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: Validate() = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestNodeName(t *testing.T) {
	t.Setenv("NODEMESH_NODE", "from-env")
	if got := (Config{Node: "flag"}).NodeName(); got != "flag" {
		t.Errorf("NodeName with --node = %q", got)
	}
	if got := (Config{}).NodeName(); got != "from-env" {
		t.Errorf("NodeName from the environment = %q", got)
	}
}
