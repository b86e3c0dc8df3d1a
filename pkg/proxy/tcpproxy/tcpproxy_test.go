package tcpproxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodemesh/nodemesh/pkg/proxy/portset"
	"github.com/nodemesh/nodemesh/pkg/table"
)

func TestHalfCloseClientStopsSendingServerStillAnswers(t *testing.T) {
	// The backend reads until EOF, then answers: this only works when the
	// proxy forwards the client's half-close and keeps the other way open.
	payload := bytes.Repeat([]byte("x"), 3<<20) // past one chunk
	backend := startServer(t, func(c *net.TCPConn) {
		n, err := io.Copy(io.Discard, c)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "read %d bytes\n", n)
	})
	m, reg := newTestManager(t, Options{})
	port := freePort(t)
	if err := m.Apply(tableOf(streamRoute("svc", port, backendOf("svc", 1, backend.addr)))); err != nil {
		t.Fatal(err)
	}
	c := dial(t, port)
	if _, err := c.c.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := c.c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(c.r)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("read %d bytes\n", len(payload)); string(rest) != want {
		t.Fatalf("got %q, want %q", rest, want)
	}
	// The tunnel ends once both sides are closed; metrics then hold.
	waitFor(t, "no active connection", func() bool {
		return testutil.ToFloat64(m.metrics.active.WithLabelValues("test", "svc")) == 0
	})
	if got := testutil.ToFloat64(m.metrics.bytes.WithLabelValues("test", "svc", directionToBackend)); got != float64(len(payload)) {
		t.Errorf("bytes to backend: %v, want %d", got, len(payload))
	}
	if got := testutil.ToFloat64(m.metrics.bytes.WithLabelValues("test", "svc", directionToClient)); got != float64(len(rest)) {
		t.Errorf("bytes to client: %v, want %d", got, len(rest))
	}
	if n, err := testutil.GatherAndCount(reg, "nodemesh_proxy_tcp_connections_total"); err != nil || n == 0 {
		t.Errorf("connections metric not registered: %d, %v", n, err)
	}
}

func TestFailoverToNextEndpointWhenConnectIsRefused(t *testing.T) {
	live := nameServer(t, "live")
	tests := []struct {
		name        string
		attempts    int
		wantOK      int
		wantFailed  int
		connections int
	}{
		{"two attempts reach the live endpoint every time", 2, 4, 0, 4},
		{"one attempt fails whenever the dead endpoint is drawn", 1, 2, 2, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newTestManager(t, Options{ConnectAttempts: tt.attempts})
			port := freePort(t)
			// Round robin starts at the first endpoint: the dead one.
			if err := m.Apply(tableOf(streamRoute("svc", port, backendOf("svc", 1, deadAddr(t), live.addr)))); err != nil {
				t.Fatal(err)
			}
			ok := 0
			for range tt.connections {
				if got := dial(t, port).line(); got == "live" {
					ok++
				}
			}
			if ok != tt.wantOK {
				t.Errorf("%d connections reached the backend, want %d", ok, tt.wantOK)
			}
			if got := testutil.ToFloat64(m.metrics.connections.WithLabelValues("test", "svc", resultConnectError)); got != float64(tt.wantFailed) {
				t.Errorf("connect_error count %v, want %d", got, tt.wantFailed)
			}
		})
	}
}

func TestNoEndpointsClosesTheClient(t *testing.T) {
	m, _ := newTestManager(t, Options{})
	port := freePort(t)
	if err := m.Apply(tableOf(streamRoute("svc", port, backendOf("svc", 1)))); err != nil {
		t.Fatal(err)
	}
	if got := dial(t, port).line(); !strings.HasPrefix(got, "error: ") {
		t.Fatalf("got %q, want the connection closed", got)
	}
	if got := testutil.ToFloat64(m.metrics.connections.WithLabelValues("test", "svc", resultNoEndpoints)); got != 1 {
		t.Errorf("no_endpoints count %v, want 1", got)
	}
}

func TestWeightedChoiceAcrossBackends(t *testing.T) {
	a, b := nameServer(t, "a"), nameServer(t, "b")
	m, _ := newTestManager(t, Options{})
	port := freePort(t)
	if err := m.Apply(tableOf(streamRoute("svc", port, backendOf("a", 1, a.addr), backendOf("b", 3, b.addr)))); err != nil {
		t.Fatal(err)
	}
	const n = 400
	counts := map[string]int{}
	for range n {
		c := dial(t, port)
		counts[c.line()]++
		c.c.Close()
	}
	// Expected 100 for a; one standard deviation is 8.7, so ±35 is 4σ.
	if counts["a"] < 65 || counts["a"] > 135 || counts["a"]+counts["b"] != n {
		t.Fatalf("counts %v, want about 100 a and 300 b", counts)
	}
}

func TestHotSwapKeepsOpenConnections(t *testing.T) {
	oldSvc, newSvc, other := nameServer(t, "old"), nameServer(t, "new"), nameServer(t, "other")
	m, _ := newTestManager(t, Options{})
	port, port2 := freePort(t), freePort(t)
	if err := m.Apply(tableOf(streamRoute("svc", port, backendOf("svc", 1, oldSvc.addr)))); err != nil {
		t.Fatal(err)
	}
	open := dial(t, port)
	if got := open.line(); got != "old" {
		t.Fatalf("first connection reached %q", got)
	}

	if err := m.Apply(tableOf(
		streamRoute("svc", port, backendOf("svc", 1, newSvc.addr)),
		streamRoute("other", port2, backendOf("other", 1, other.addr)),
	)); err != nil {
		t.Fatal(err)
	}
	if got := open.echo("still there"); got != "still there" {
		t.Fatalf("open connection after swap: %q", got)
	}
	if got := dial(t, port).line(); got != "new" {
		t.Errorf("new connection after swap reached %q, want new", got)
	}
	if got := dial(t, port2).line(); got != "other" {
		t.Errorf("added port reached %q, want other", got)
	}

	// Removing the port closes its listener and its connections.
	if err := m.Apply(tableOf(streamRoute("other", port2, backendOf("other", 1, other.addr)))); err != nil {
		t.Fatal(err)
	}
	if got := open.echo("gone?"); !strings.HasPrefix(got, "error: ") {
		t.Errorf("connection on a removed port still answers: %q", got)
	}
	if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), testTimeout); err == nil {
		t.Errorf("removed port still accepts")
	}
	if got := m.Ports(); len(got) != 1 || got[0] != port2 {
		t.Errorf("ports %v, want [%d]", got, port2)
	}
}

func TestApplyFailureKeepsTheOldState(t *testing.T) {
	oldSvc, newSvc := nameServer(t, "old"), nameServer(t, "new")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := int32(netip.MustParseAddrPort(busy.Addr().String()).Port())

	m, _ := newTestManager(t, Options{})
	port, port3 := freePort(t), freePort(t)
	if err := m.Apply(tableOf(streamRoute("svc", port, backendOf("svc", 1, oldSvc.addr)))); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		table   *table.Table
		wantErr string
	}{
		{
			name: "busy port",
			table: tableOf(
				streamRoute("svc", port, backendOf("svc", 1, newSvc.addr)),
				streamRoute("fresh", port3, backendOf("fresh", 1, newSvc.addr)),
				streamRoute("busy", busyPort, backendOf("busy", 1, newSvc.addr)),
			),
			wantErr: fmt.Sprintf("tcp proxy port %d (test/busy)", busyPort),
		},
		{
			name: "duplicate port",
			table: tableOf(
				streamRoute("svc", port, backendOf("svc", 1, newSvc.addr)),
				streamRoute("dup", port, backendOf("dup", 1, newSvc.addr)),
			),
			wantErr: fmt.Sprintf("tcp proxy port %d: used by both test/svc and test/dup", port),
		},
		{
			name:    "bad endpoint",
			table:   tableOf(streamRoute("svc", port, backendOf("svc", 1, "not-an-address"))),
			wantErr: fmt.Sprintf("tcp proxy port %d (test/svc)", port),
		},
		{
			name:    "port out of range",
			table:   tableOf(streamRoute("svc", 70000, backendOf("svc", 1, newSvc.addr))),
			wantErr: "tcp proxy port 70000 (test/svc): out of range",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := m.Apply(tt.table)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Apply error %v, want it to contain %q", err, tt.wantErr)
			}
			if got := dial(t, port).line(); got != "old" {
				t.Errorf("after a failed Apply the port reaches %q, want old", got)
			}
			if got := m.Ports(); len(got) != 1 || got[0] != port {
				t.Errorf("ports %v, want only %d", got, port)
			}
			// A listener opened before the failure was closed again.
			if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port3), testTimeout); err == nil {
				c.Close()
				t.Errorf("port %d opened by the failed Apply still accepts", port3)
			}
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	// The backend answers only "ping", so traffic can flow one way only.
	backend := startServer(t, func(c *net.TCPConn) {
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			if sc.Text() == "ping" {
				c.Write([]byte("pong\n"))
			}
		}
	})
	// Generous against a loaded machine: a pause of a whole idle period
	// between two writes would be a real idle close.
	const idle = 400 * time.Millisecond
	m, _ := newTestManager(t, Options{IdleTimeout: idle})
	port := freePort(t)
	if err := m.Apply(tableOf(streamRoute("svc", port, backendOf("svc", 1, backend.addr)))); err != nil {
		t.Fatal(err)
	}

	t.Run("a connection with traffic in one direction only stays open", func(t *testing.T) {
		c := dial(t, port)
		// The client keeps sending for two idle periods and the backend
		// stays silent: the backend-to-client direction sees no byte.
		for range 16 {
			if _, err := c.c.Write([]byte("tick\n")); err != nil {
				t.Fatalf("write while active: %v", err)
			}
			time.Sleep(idle / 8)
		}
		if got := c.echo("ping"); got != "pong" {
			t.Fatalf("connection cut while active: %q", got)
		}
	})

	t.Run("a quiet connection is closed within two idle periods", func(t *testing.T) {
		c := dial(t, port)
		if got := c.echo("ping"); got != "pong" {
			t.Fatalf("echo %q", got)
		}
		start := time.Now()
		_, err := c.r.ReadByte()
		if !errors.Is(err, io.EOF) {
			t.Fatalf("read on idle connection: %v, want EOF", err)
		}
		if d := time.Since(start); d < idle || d > 2*idle+3*time.Second {
			t.Errorf("closed after %v, want between %v and about %v", d, idle, 2*idle)
		}
	})
}

func TestAdmitHookSeesTheSourceAddress(t *testing.T) {
	backend := nameServer(t, "svc")
	var (
		mu   sync.Mutex
		seen []netip.Addr
	)
	admit := func(tb *table.Table, r *table.StreamRoute, src netip.Addr) bool {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, src)
		return r.Service.Name != "closed"
	}
	m, _ := newTestManager(t, Options{Admit: admit})
	open, closed := freePort(t), freePort(t)
	if err := m.Apply(tableOf(
		streamRoute("svc", open, backendOf("svc", 1, backend.addr)),
		streamRoute("closed", closed, backendOf("svc", 1, backend.addr)),
	)); err != nil {
		t.Fatal(err)
	}
	if got := dial(t, open).line(); got != "svc" {
		t.Errorf("admitted connection got %q", got)
	}
	if got := dial(t, closed).line(); !strings.HasPrefix(got, "error: ") {
		t.Errorf("refused connection got %q, want it closed", got)
	}
	if got := testutil.ToFloat64(m.metrics.connections.WithLabelValues("test", "closed", resultDenied)); got != 1 {
		t.Errorf("denied count %v, want 1", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Errorf("hook called %d times, want 2", len(seen))
	}
	for _, a := range seen {
		if a != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("hook saw source %v, want 127.0.0.1", a)
		}
	}
}

func TestApplyAfterCloseFails(t *testing.T) {
	m, _ := newTestManager(t, Options{})
	m.Close()
	if err := m.Apply(tableOf()); !errors.Is(err, portset.ErrClosed) {
		t.Fatalf("Apply after Close: %v", err)
	}
}

// waitFor polls cond for up to testTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
