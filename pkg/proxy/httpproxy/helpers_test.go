package httpproxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/pkg/proxy/sockio"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// backend is a test server on 127.0.0.1 that answers with its name and
// counts the requests it received.
type backend struct {
	name string
	srv  *httptest.Server
	hits atomic.Int64
}

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	b := &backend{name: name}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Backend", name)
		fmt.Fprintf(w, "%s %s %s", name, r.Method, body)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// newBackendFunc starts a backend with a handler of its own.
func newBackendFunc(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func addr(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// deadAddr returns a loopback address nobody listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func svc(name string) table.ServiceRef { return table.ServiceRef{Namespace: "shop", Name: name} }

func backendOf(name string, weight int32, addrs ...string) table.Backend {
	b := table.Backend{Service: svc(name), Weight: weight}
	for _, a := range addrs {
		b.Endpoints = append(b.Endpoints, table.Endpoint{Address: a})
	}
	return b
}

// httpRoute is a route of service name on port, default port, scheme http.
func httpRoute(name string, port int32, backends ...table.Backend) table.HTTPRoute {
	return table.HTTPRoute{
		Service: svc(name), Port: port, Hosts: []string{name + ".shop.mesh"},
		DefaultPort: true, Scheme: table.SchemeHTTP, Backends: backends,
	}
}

func tableOf(routes ...table.HTTPRoute) *table.Table {
	return &table.Table{Schema: table.SchemaVersion, HTTP: routes}
}

// proxy is a Router behind a real listener on 127.0.0.1.
type proxy struct {
	rt  *Router
	reg *prometheus.Registry
	url string
	srv *Server
}

func newProxy(t *testing.T, opts Options) *proxy {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	rt := New(opts)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(rt, ServerOptions{ReadHeaderTimeout: 5 * time.Second})
	// Client connections as the proxy's listener makes them (pkg/proxy
	// run.go): raw system calls unless StdSocketIO.
	var sl net.Listener = l
	if !opts.StdSocketIO {
		sl = sockio.Listener{Listener: l}
	}
	go func() { _ = srv.Serve(sl) }()
	t.Cleanup(func() { srv.Close(); rt.Close() })
	return &proxy{rt: rt, reg: reg, url: "http://" + l.Addr().String(), srv: srv}
}

func (p *proxy) apply(t *testing.T, tb *table.Table) {
	t.Helper()
	if err := table.Validate(tb); err != nil {
		t.Fatalf("test table invalid: %v", err)
	}
	if err := p.rt.Apply(tb); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

var testClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

// do sends method to the proxy with the given Host and path and returns the
// status and body.
func (p *proxy) do(t *testing.T, method, host, path string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, p.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (p *proxy) get(t *testing.T, host, path string) (int, string) {
	return p.do(t, http.MethodGet, host, path, nil)
}
