package httpproxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/pkg/table"
)

func TestSplitHost(t *testing.T) {
	tests := []struct {
		in   string
		host string
		port int
	}{
		{"web.shop.mesh", "web.shop.mesh", 0},
		{"web.shop.mesh:8080", "web.shop.mesh", 8080},
		{"Web.Shop.MESH.", "web.shop.mesh", 0},
		{"web.shop.mesh.:80", "web.shop.mesh", 80},
		{"10.96.0.10:80", "10.96.0.10", 80},
		{"[fd00::1]:8080", "fd00::1", 8080},
		{"[fd00::1]", "fd00::1", 0},
		{"fd00::1", "fd00::1", 0},
		{"web:0", "web", -1},
		{"web:99999", "web", -1},
		{"web:+80", "web", -1},
		{"web:http", "web", -1},
		{"[fd00::1", "[fd00::1", -1},
		{"", "", 0},
	}
	for _, tt := range tests {
		h, p := splitHost(tt.in)
		if h != tt.host || p != tt.port {
			t.Errorf("splitHost(%q) = %q, %d; want %q, %d", tt.in, h, p, tt.host, tt.port)
		}
	}
}

func TestRoutesByHostAndPort(t *testing.T) {
	web80, web8080, api := newBackend(t, "web80"), newBackend(t, "web8080"), newBackend(t, "api")
	webRoute := httpRoute("web", 80, backendOf("web", 1, addr(web80.srv)))
	webRoute.Hosts = []string{"10.96.0.10", "fd00::10", "web.shop.mesh", "web.shop.traefik.mesh"}
	webAlt := httpRoute("web", 8080, backendOf("web", 1, addr(web8080.srv)))
	webAlt.Hosts = webRoute.Hosts
	webAlt.DefaultPort = false
	p := newProxy(t, Options{})
	p.apply(t, tableOf(webRoute, webAlt, httpRoute("api", 80, backendOf("api", 1, addr(api.srv)))))

	tests := []struct {
		host     string
		wantCode int
		wantBody string
	}{
		{"web.shop.mesh", 200, "web80"},
		{"web.shop.mesh:80", 200, "web80"},
		{"web.shop.mesh:8080", 200, "web8080"},
		{"WEB.Shop.Mesh.", 200, "web80"},
		{"web.shop.mesh.:8080", 200, "web8080"},
		{"web.shop.traefik.mesh", 200, "web80"},
		{"10.96.0.10:8080", 200, "web8080"},
		{"[fd00::10]:80", 200, "web80"},
		{"api.shop.mesh", 200, "api"},
		{"api.shop.mesh:8080", 404, `no route for host "api.shop.mesh"`},
		{"nope.shop.mesh", 404, `no route for host "nope.shop.mesh"`},
		{"web.shop.mesh:9999", 404, `no route for host "web.shop.mesh"`},
	}
	for _, tt := range tests {
		code, body := p.get(t, tt.host, "/")
		if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
			t.Errorf("Host %q: %d %q; want %d %q", tt.host, code, body, tt.wantCode, tt.wantBody)
		}
	}
}

func TestMatchPrecedence(t *testing.T) {
	v1, v2, v3 := newBackend(t, "v1"), newBackend(t, "v2"), newBackend(t, "v3")
	r := httpRoute("web", 80, backendOf("web-v1", 1, addr(v1.srv)))
	r.Matches = []table.HTTPMatchRoute{
		{Name: "canary-api", Match: table.HTTPMatch{PathRegex: "/api", Headers: []table.HeaderMatch{{Name: "x-canary", Regex: "^yes$"}}},
			Backends: []table.Backend{backendOf("web-v2", 1, addr(v2.srv))}},
		{Name: "writes", Match: table.HTTPMatch{Methods: []string{"POST", "PUT"}},
			Backends: []table.Backend{backendOf("web-v3", 1, addr(v3.srv))}},
	}
	p := newProxy(t, Options{})
	p.apply(t, tableOf(r))
	tests := []struct {
		name, method, path, canary, want string
	}{
		{"first rule", "GET", "/api/items", "yes", "v2"},
		{"first rule wins over second", "POST", "/api/items", "yes", "v2"},
		{"second rule", "POST", "/other", "yes", "v3"},
		{"header mismatch falls through", "POST", "/api", "no", "v3"},
		{"no rule", "GET", "/api", "", "v1"},
		{"path is anchored", "GET", "/x/api", "yes", "v1"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, p.url+tt.path, nil)
		req.Host = "web.shop.mesh"
		if tt.canary != "" {
			req.Header.Set("X-Canary", tt.canary)
		}
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Backend"); got != tt.want {
			t.Errorf("%s: went to %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestProxyAnswers(t *testing.T) {
	slow := newBackendFunc(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	p := newProxy(t, Options{ResponseHeaderTimeout: 100 * time.Millisecond})
	p.apply(t, tableOf(
		httpRoute("empty", 80, backendOf("empty", 1)),
		httpRoute("down", 80, backendOf("down", 1, deadAddr(t))),
		httpRoute("slow", 80, backendOf("slow", 1, addr(slow))),
	))
	tests := []struct {
		host     string
		wantCode int
		wantBody string
	}{
		{"empty.shop.mesh", 503, "no ready backend for shop/empty"},
		{"down.shop.mesh", 502, "Bad Gateway"},
		{"slow.shop.mesh", 504, "Gateway Timeout"},
	}
	for _, tt := range tests {
		code, body := p.get(t, tt.host, "/")
		if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
			t.Errorf("%s: %d %q; want %d %q", tt.host, code, body, tt.wantCode, tt.wantBody)
		}
	}
}

func TestAdmitRefusesWith403(t *testing.T) {
	b := newBackend(t, "web")
	p := newProxy(t, Options{Admit: func(_ *table.Table, r *table.HTTPRoute, req *http.Request) error {
		if req.Header.Get("X-Allowed") == "yes" {
			return nil
		}
		return errors.New("no TrafficTarget allows you to reach " + r.Service.String())
	}})
	p.apply(t, tableOf(httpRoute("web", 80, backendOf("web", 1, addr(b.srv)))))
	if code, body := p.get(t, "web.shop.mesh", "/"); code != 403 || body != "no TrafficTarget allows you to reach shop/web\n" {
		t.Fatalf("got %d %q, want 403 with the reason", code, body)
	}
	if b.hits.Load() != 0 {
		t.Fatal("a denied request reached the backend")
	}
}

func TestSetsForwardedHeaders(t *testing.T) {
	got := make(chan http.Header, 1)
	b := newBackendFunc(t, func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Clone(); _, _ = w.Write([]byte("ok")) })
	p := newProxy(t, Options{})
	p.apply(t, tableOf(httpRoute("web", 80, backendOf("web", 1, addr(b)))))
	if code, _ := p.get(t, "web.shop.mesh:80", "/"); code != 200 {
		t.Fatalf("status %d", code)
	}
	h := <-got
	for k, want := range map[string]string{
		"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "web.shop.mesh:80",
		"X-Forwarded-Proto": "http", "X-Forwarded-Port": "80", "X-Real-Ip": "127.0.0.1",
	} {
		if h.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, h.Get(k), want)
		}
	}
	if h.Get("X-Forwarded-Server") == "" {
		t.Error("X-Forwarded-Server not set")
	}
}

// TestEndpointAddresses: an endpoint's ip:port becomes the backend URL's
// host as it is, brackets of an IPv6 address included, and an address
// without a port is refused before anything serves it.
func TestEndpointAddresses(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	v6 := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "v6 %s", r.Host)
	})}}
	v6.Start()
	t.Cleanup(v6.Close)
	p := newProxy(t, Options{})
	p.apply(t, tableOf(httpRoute("six", 80, backendOf("six", 1, l.Addr().String()))))
	if code, body := p.get(t, "six.shop.mesh", "/"); code != 200 || !strings.HasPrefix(body, "v6 ") {
		t.Errorf("IPv6 endpoint %s: %d %q", l.Addr(), code, body)
	}

	for _, bad := range []string{"10.244.1.1", "10.244.1.1:", "[::1]"} {
		rt := New(Options{})
		tb := tableOf(httpRoute("bad", 80, backendOf("bad", 1, bad)))
		if _, err := rt.Prepare(tb); err == nil || !strings.Contains(err.Error(), "is not ip:port") {
			t.Errorf("endpoint %q: Prepare error %v; want one saying it is not ip:port", bad, err)
		}
		rt.Close()
	}
}
