package httpproxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// protoEcho answers with the protocol the request arrived over.
func protoEcho(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "%s", r.Proto)
}

func TestBackendSchemes(t *testing.T) {
	h2cSrv := httptest.NewUnstartedServer(http.HandlerFunc(protoEcho))
	h2cSrv.Config.Protocols = new(http.Protocols)
	h2cSrv.Config.Protocols.SetUnencryptedHTTP2(true) // HTTP/2 only: HTTP/1.1 would fail
	h2cSrv.Start()
	defer h2cSrv.Close()
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(protoEcho))
	tlsSrv.EnableHTTP2 = true
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	plainSrv := newBackendFunc(t, protoEcho)

	route := func(name string, s table.Scheme, a string) table.HTTPRoute {
		r := httpRoute(name, 80, backendOf(name, 1, a))
		r.Scheme = s
		return r
	}
	tb := tableOf(
		route("h2c", table.SchemeH2C, addr(h2cSrv)),
		route("tls", table.SchemeHTTPS, strings.TrimPrefix(tlsSrv.URL, "https://")),
		route("plain", table.SchemeHTTP, addr(plainSrv)),
	)
	tests := []struct {
		name     string
		verify   bool
		host     string
		wantCode int
		wantBody string
	}{
		{"h2c backend gets HTTP/2", false, "h2c.shop.mesh", 200, "HTTP/2.0"},
		{"https backend, verification off by default", false, "tls.shop.mesh", 200, "HTTP/2.0"},
		{"https backend with an unknown CA and verification on", true, "tls.shop.mesh", 502, ""},
		{"http backend gets HTTP/1.1", false, "plain.shop.mesh", 200, "HTTP/1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProxy(t, Options{VerifyHTTPSBackends: tt.verify})
			p.apply(t, tb)
			code, body := p.get(t, tt.host, "/")
			if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("got %d %q, want %d %q", code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

func TestClientSpeaksH2C(t *testing.T) {
	b := newBackendFunc(t, protoEcho)
	for _, std := range []bool{false, true} {
		t.Run(fmt.Sprintf("std-socket-io=%v", std), func(t *testing.T) {
			p := newProxy(t, Options{StdSocketIO: std})
			p.apply(t, tableOf(httpRoute("web", 80, backendOf("web", 1, addr(b)))))
			tr := &http.Transport{Protocols: new(http.Protocols)}
			tr.Protocols.SetUnencryptedHTTP2(true) // prior knowledge
			defer tr.CloseIdleConnections()
			req, _ := http.NewRequest("GET", p.url+"/", nil)
			req.Host = "web.shop.mesh"
			resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			buf := make([]byte, 64)
			n, _ := resp.Body.Read(buf)
			if resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(buf[:n]) != "HTTP/1.1" {
				t.Fatalf("client got %s %d %q; want HTTP/2 to the proxy and HTTP/1.1 to the backend", resp.Proto, resp.StatusCode, buf[:n])
			}
		})
	}
}

func TestWebSocketEcho(t *testing.T) {
	echo := httptest.NewServer(websocket.Handler(func(c *websocket.Conn) {
		var msg string
		for websocket.Message.Receive(c, &msg) == nil {
			if websocket.Message.Send(c, "echo: "+msg) != nil {
				return
			}
		}
	}))
	defer echo.Close()
	for _, tc := range []struct {
		retries int // the retry buffer must let upgrades through
		std     bool
	}{{0, false}, {3, false}, {0, true}} {
		t.Run(fmt.Sprintf("retries=%d,std-socket-io=%v", tc.retries, tc.std), func(t *testing.T) {
			r := httpRoute("ws", 80, backendOf("ws", 1, addr(echo)))
			r.Middleware.RetryAttempts = tc.retries
			r.Middleware.CircuitBreaker = "NetworkErrorRatio() > 0.9"
			p := newProxy(t, Options{StdSocketIO: tc.std})
			p.apply(t, tableOf(r))

			cfg, err := websocket.NewConfig("ws://ws.shop.mesh/", "http://ws.shop.mesh/")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", strings.TrimPrefix(p.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
			ws, err := websocket.NewClient(cfg, raw)
			if err != nil {
				t.Fatalf("handshake through the proxy: %v", err)
			}
			for _, msg := range []string{"hello", "world"} {
				if err := websocket.Message.Send(ws, msg); err != nil {
					t.Fatal(err)
				}
				var got string
				if err := websocket.Message.Receive(ws, &got); err != nil || got != "echo: "+msg {
					t.Fatalf("got %q, %v", got, err)
				}
			}
			ws.Close()
			waitMetric(t, p, `nodemesh_proxy_http_requests_total{code="101",method="GET",namespace="shop",service="ws"} 1`)
		})
	}
}

func TestRetryRouteServesEmptyStreamedBodies(t *testing.T) {
	b := newBackendFunc(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush() // chunked, no Content-Length, no bytes
	})
	r := httpRoute("web", 80, backendOf("web", 1, addr(b)))
	r.Middleware.RetryAttempts = 2
	p := newProxy(t, Options{})
	p.apply(t, tableOf(r))
	if code, body := p.get(t, "web.shop.mesh", "/"); code != 200 || body != "" {
		t.Fatalf("got %d %q, want 200 with an empty body", code, body)
	}
}
