package udpproxy

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// testTimeout bounds every blocking step of these tests.
const testTimeout = 5 * time.Second

// echoServer answers each datagram with "<name>:<payload>".
func echoServer(t *testing.T, name string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(name+":"+string(buf[:n])), from)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return pc.LocalAddr().String()
}

// freeAddr returns a loopback UDP address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().String()
}

func freePort(t *testing.T) int32 {
	return int32(netip.MustParseAddrPort(freeAddr(t)).Port())
}

func routeOf(service string, port int32, addrs ...string) table.StreamRoute {
	b := table.Backend{Service: table.ServiceRef{Namespace: "test", Name: service}, Weight: 1}
	for _, a := range addrs {
		b.Endpoints = append(b.Endpoints, table.Endpoint{Address: a})
	}
	return table.StreamRoute{
		Service:   table.ServiceRef{Namespace: "test", Name: service},
		Port:      53,
		ProxyPort: port,
		Backends:  []table.Backend{b},
	}
}

func tableOf(routes ...table.StreamRoute) *table.Table {
	return &table.Table{Schema: table.SchemaVersion, UDP: routes}
}

func newTestManager(t *testing.T, opts Options) *Manager {
	t.Helper()
	opts.ListenAddress = "127.0.0.1"
	opts.Registerer = prometheus.NewRegistry()
	m := New(opts)
	t.Cleanup(func() { m.Close() })
	return m
}

// client is one UDP client socket talking to a proxy port.
type client struct {
	t *testing.T
	c net.Conn
}

func newClient(t *testing.T, port int32) *client {
	t.Helper()
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c}
}

// ask sends msg and returns the reply, or "error: ..." when none comes
// within wait.
func (c *client) ask(msg string, wait time.Duration) string {
	if _, err := c.c.Write([]byte(msg)); err != nil {
		return "error: " + err.Error()
	}
	c.c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	n, err := c.c.Read(buf)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(buf[:n])
}

func count(vec *prometheus.CounterVec, labels ...string) float64 {
	return testutil.ToFloat64(vec.WithLabelValues(labels...))
}

// waitCount waits up to testTimeout for a counter to reach want and
// returns its last value. The proxy counts a datagram after its write
// returns, so the peer may read it (and the test go on) a moment before
// the counter moves; a count read at once would be racy.
func waitCount(want float64, vec *prometheus.CounterVec, labels ...string) float64 {
	deadline := time.Now().Add(testTimeout)
	got := count(vec, labels...)
	for got != want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		got = count(vec, labels...)
	}
	return got
}

func TestTwoClientsEachGetTheirOwnReplies(t *testing.T) {
	backend := echoServer(t, "svc")
	m := newTestManager(t, Options{})
	port := freePort(t)
	if err := m.Apply(tableOf(routeOf("svc", port, backend))); err != nil {
		t.Fatal(err)
	}
	a, b := newClient(t, port), newClient(t, port)
	for i := range 5 {
		// Send both before reading either, so replies could cross.
		ma, mb := fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)
		a.c.Write([]byte(ma))
		b.c.Write([]byte(mb))
		for _, tc := range []struct {
			c    *client
			want string
		}{{a, "svc:" + ma}, {b, "svc:" + mb}} {
			tc.c.c.SetReadDeadline(time.Now().Add(testTimeout))
			buf := make([]byte, 64)
			n, err := tc.c.c.Read(buf)
			if err != nil || string(buf[:n]) != tc.want {
				t.Fatalf("got %q (%v), want %q", buf[:n], err, tc.want)
			}
		}
	}
	if got := count(m.metrics.sessions, "test", "svc"); got != 2 {
		t.Errorf("sessions opened %v, want 2", got)
	}
	if got := waitCount(10, m.metrics.datagrams, "test", "svc", "to_client"); got != 10 {
		t.Errorf("datagrams to clients %v, want 10", got)
	}
}

func TestIdleSessionsExpire(t *testing.T) {
	backend := echoServer(t, "svc")
	const idle = 400 * time.Millisecond
	m := newTestManager(t, Options{IdleTimeout: idle})
	port := freePort(t)
	if err := m.Apply(tableOf(routeOf("svc", port, backend))); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, port)
	// Traffic every idle/8 for about two idle periods keeps one session.
	for i := range 16 {
		if got := c.ask(fmt.Sprint(i), testTimeout); got != fmt.Sprintf("svc:%d", i) {
			t.Fatalf("reply %q", got)
		}
		time.Sleep(idle / 8)
	}
	if got := count(m.metrics.sessions, "test", "svc"); got != 1 {
		t.Fatalf("sessions opened while active: %v, want 1", got)
	}
	active := m.metrics.active.WithLabelValues("test", "svc")
	deadline := time.Now().Add(testTimeout)
	for testutil.ToFloat64(active) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle session never expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := c.ask("again", testTimeout); got != "svc:again" {
		t.Fatalf("after expiry: %q", got)
	}
	if got := count(m.metrics.sessions, "test", "svc"); got != 2 {
		t.Errorf("sessions opened %v, want 2 (a new one after expiry)", got)
	}
}

func TestSessionLimitDropsNewClients(t *testing.T) {
	backend := echoServer(t, "svc")
	m := newTestManager(t, Options{MaxSessions: 1})
	port := freePort(t)
	if err := m.Apply(tableOf(routeOf("svc", port, backend))); err != nil {
		t.Fatal(err)
	}
	if got := newClient(t, port).ask("first", testTimeout); got != "svc:first" {
		t.Fatalf("first client: %q", got)
	}
	if got := newClient(t, port).ask("second", 200*time.Millisecond); !strings.HasPrefix(got, "error: ") {
		t.Fatalf("second client over the cap got %q", got)
	}
	if got := count(m.metrics.dropped, "test", "svc", reasonSessionLimit); got != 1 {
		t.Errorf("session_limit drops %v, want 1", got)
	}
}

func TestFailoverAfterBackendUnreachable(t *testing.T) {
	live := echoServer(t, "live")
	m := newTestManager(t, Options{})
	port := freePort(t)
	// Round robin starts at the dead endpoint; its ICMP port unreachable
	// ends the session, and the client's retry opens one on the live one.
	if err := m.Apply(tableOf(routeOf("svc", port, freeAddr(t), live))); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, port)
	for i := range 20 {
		if got := c.ask("x", 200*time.Millisecond); got == "live:x" {
			if i == 0 {
				t.Fatalf("first datagram answered: the dead endpoint was not tried first")
			}
			return
		}
	}
	t.Fatal("never reached the live endpoint")
}

func TestReloadKeepsSessionsWhoseEndpointRemains(t *testing.T) {
	x, y := echoServer(t, "x"), echoServer(t, "y")
	m := newTestManager(t, Options{})
	port, port2 := freePort(t), freePort(t)
	if err := m.Apply(tableOf(routeOf("svc", port, x))); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, port)
	if got := c.ask("1", testTimeout); got != "x:1" {
		t.Fatalf("before reload: %q", got)
	}
	// Endpoint y is added and another port opened: the session stays on x.
	if err := m.Apply(tableOf(routeOf("svc", port, x, y), routeOf("other", port2, y))); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if got := c.ask(fmt.Sprint(i), testTimeout); got != fmt.Sprintf("x:%d", i) {
			t.Fatalf("session moved after a reload that kept its endpoint: %q", got)
		}
	}
	// Endpoint x leaves: the session closes and the next datagram reaches y.
	if err := m.Apply(tableOf(routeOf("svc", port, y))); err != nil {
		t.Fatal(err)
	}
	if got := c.ask("2", testTimeout); got != "y:2" {
		t.Fatalf("after its endpoint left: %q", got)
	}
	if got := m.Ports(); len(got) != 1 || got[0] != port {
		t.Errorf("ports %v, want [%d]", got, port)
	}
}

func TestApplyFailureKeepsTheOldState(t *testing.T) {
	x, y := echoServer(t, "x"), echoServer(t, "y")
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := int32(netip.MustParseAddrPort(busy.LocalAddr().String()).Port())
	m := newTestManager(t, Options{})
	port, port3 := freePort(t), freePort(t)
	if err := m.Apply(tableOf(routeOf("svc", port, x))); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		table   *table.Table
		wantErr string
	}{
		{"busy port", tableOf(routeOf("svc", port, y), routeOf("fresh", port3, y), routeOf("busy", busyPort, y)),
			fmt.Sprintf("udp proxy port %d (test/busy)", busyPort)},
		{"duplicate port", tableOf(routeOf("svc", port, y), routeOf("dup", port, y)),
			fmt.Sprintf("udp proxy port %d: used by both test/svc and test/dup", port)},
		{"bad endpoint", tableOf(routeOf("svc", port, "nowhere")), fmt.Sprintf("udp proxy port %d (test/svc)", port)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := m.Apply(tt.table)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Apply error %v, want it to contain %q", err, tt.wantErr)
			}
			if got := newClient(t, port).ask("q", testTimeout); got != "x:q" {
				t.Errorf("after a failed Apply: %q, want x:q", got)
			}
			if got := m.Ports(); len(got) != 1 || got[0] != port {
				t.Errorf("ports %v, want only %d", got, port)
			}
			// The port opened by the failed Apply is free again.
			pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port3))
			if err != nil {
				t.Errorf("port %d still held after the failed Apply: %v", port3, err)
			} else {
				pc.Close()
			}
		})
	}
}
