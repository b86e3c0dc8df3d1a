package tcpproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// testTimeout bounds every blocking step of these tests.
const testTimeout = 5 * time.Second

// server is a loopback TCP backend running handle on each connection.
type server struct {
	ln   net.Listener
	wg   sync.WaitGroup
	addr string
}

func startServer(t *testing.T, handle func(c *net.TCPConn)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln, addr: ln.Addr().String()}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(testTimeout))
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

// nameServer answers every connection with its name and a newline, then
// echoes lines until EOF.
func nameServer(t *testing.T, name string) *server {
	return startServer(t, func(c *net.TCPConn) {
		fmt.Fprintf(c, "%s\n", name)
		io.Copy(c, c)
	})
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int32 {
	t.Helper()
	ap := netip.MustParseAddrPort(deadAddr(t))
	return int32(ap.Port())
}

func backendOf(name string, weight int32, addrs ...string) table.Backend {
	b := table.Backend{Service: table.ServiceRef{Namespace: "test", Name: name}, Weight: weight}
	for _, a := range addrs {
		b.Endpoints = append(b.Endpoints, table.Endpoint{Address: a})
	}
	return b
}

func streamRoute(service string, port int32, backends ...table.Backend) table.StreamRoute {
	return table.StreamRoute{
		Service:   table.ServiceRef{Namespace: "test", Name: service},
		Port:      5000,
		ProxyPort: port,
		Backends:  backends,
	}
}

func tableOf(routes ...table.StreamRoute) *table.Table {
	return &table.Table{Schema: table.SchemaVersion, TCP: routes}
}

func newTestManager(t *testing.T, opts Options) (*Manager, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.ListenAddress = "127.0.0.1"
	opts.Registerer = reg
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = time.Second
	}
	m := New(opts)
	t.Cleanup(func() { m.Close() })
	return m, reg
}

// client is one connection through the proxy.
type client struct {
	t *testing.T
	c *net.TCPConn
	r *bufio.Reader
}

func dial(t *testing.T, port int32) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(testTimeout))
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c.(*net.TCPConn), r: bufio.NewReader(c)}
}

// line reads one line, or returns the read error's text.
func (c *client) line() string {
	s, err := c.r.ReadString('\n')
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimSuffix(s, "\n")
}

// echo sends s and returns the echoed line.
func (c *client) echo(s string) string {
	if _, err := fmt.Fprintf(c.c, "%s\n", s); err != nil {
		return "error: " + err.Error()
	}
	return c.line()
}
