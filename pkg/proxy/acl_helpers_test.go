package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// Loopback addresses the ACL tests play pods with: every 127.0.0.0/8
// address is local on Linux, so a client socket bound to one of them is
// seen by the proxy as coming from it.
const (
	ipClient   = "127.0.0.2" // shop/client-0, service account "client"
	ipIntruder = "127.0.0.3" // shop/intruder-0, service account "intruder"
	ipNoPod    = "127.0.0.4" // no pod: a node or something outside the mesh
)

var (
	saClient   = table.Identity{Namespace: "shop", ServiceAccount: "client"}
	saIntruder = table.Identity{Namespace: "shop", ServiceAccount: "intruder"}
)

func podAt(ip, name, sa string) table.Pod {
	return table.Pod{IP: ip, Namespace: "shop", Name: name, ServiceAccount: sa}
}

func svcRef(name string) table.ServiceRef { return table.ServiceRef{Namespace: "shop", Name: name} }

func backendAt(name string, endpoints ...string) table.Backend {
	b := table.Backend{Service: svcRef(name), Weight: 1}
	for _, e := range endpoints {
		b.Endpoints = append(b.Endpoints, table.Endpoint{Address: e})
	}
	return b
}

// httpRouteACL is an HTTP route for name.shop.mesh with the given Allow.
func httpRouteACL(name string, allow []table.HTTPAllow, backends ...table.Backend) table.HTTPRoute {
	return table.HTTPRoute{
		Service: svcRef(name), Port: 80, Hosts: []string{name + ".shop.mesh"}, DefaultPort: true,
		Scheme: table.SchemeHTTP, Backends: backends, Allow: allow,
	}
}

// serveHTTP serves p's HTTP router on a loopback listener, as Run does, and
// returns its address.
func serveHTTP(t *testing.T, p *Proxy) string {
	t.Helper()
	s := httptest.NewServer(p.HTTPHandler())
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// httpFrom is an HTTP client whose connections come from the loopback
// address src. It keeps connections alive, as a pod's client would.
func httpFrom(t *testing.T, src string) *http.Client {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// do sends method path to proxy with Host host and extra header pairs, and
// returns the status and body.
func do(t *testing.T, c *http.Client, proxy, method, host, path string, headers ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+proxy+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// tcpEcho is a loopback TCP server that writes back what it reads.
func tcpEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// udpEcho is a loopback UDP server that sends every datagram back.
func udpEcho(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// tcpFrom connects to the proxy port from src.
func tcpFrom(t *testing.T, src string, port int32) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads as many bytes back, or returns the error
// text ("EOF" when the proxy closed the connection).
func roundTrip(c net.Conn, msg string, wait time.Duration) string {
	c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, msg); err != nil {
		return "error: " + err.Error()
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return "error: " + err.Error()
	}
	return string(buf)
}

// udpFrom is a UDP socket on src connected to the proxy port.
func udpFrom(t *testing.T, src string, port int32) net.Conn {
	t.Helper()
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, &net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: int(port)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ask sends msg as one datagram and returns the reply, or the error text.
func ask(c net.Conn, msg string, wait time.Duration) string {
	if _, err := c.Write([]byte(msg)); err != nil {
		return "error: " + err.Error()
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(buf[:n])
}

// deniedCount reads nodemesh_proxy_acl_denied_total.
func deniedCount(p *Proxy, proto, svc, reason string) float64 {
	return testutil.ToFloat64(p.acl.denied.WithLabelValues(proto, "shop", svc, reason))
}
