package udpproxy

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// newClientFrom is newClient with the socket bound to the loopback address
// src (127.0.0.2, 127.0.0.3...), so tests can play distinct clients.
func newClientFrom(t *testing.T, src string, port int32) *client {
	t.Helper()
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, &net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: int(port)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c}
}

// TestNewTableEndsSessionsItNoLongerAdmits: a session does not keep access
// a new table took away (version 2 here refuses 127.0.0.2): the session is
// closed and the client's next datagrams are dropped and counted, while
// other clients' sessions go on.
func TestNewTableEndsSessionsItNoLongerAdmits(t *testing.T) {
	backend := echoServer(t, "svc")
	revoked := netip.MustParseAddr("127.0.0.2")
	m := newTestManager(t, Options{Admit: func(tb *table.Table, _ *table.StreamRoute, src netip.Addr) bool {
		return tb.Version < 2 || src != revoked
	}})
	port := freePort(t)
	v1 := tableOf(routeOf("svc", port, backend))
	v1.Version = 1
	if err := m.Apply(v1); err != nil {
		t.Fatal(err)
	}
	gone, kept := newClientFrom(t, "127.0.0.2", port), newClientFrom(t, "127.0.0.3", port)
	for i, c := range []*client{gone, kept} {
		if got := c.ask(fmt.Sprint(i), testTimeout); got != fmt.Sprintf("svc:%d", i) {
			t.Fatalf("before the new table: %q", got)
		}
	}
	v2 := tableOf(routeOf("svc", port, backend))
	v2.Version = 2
	if err := m.Apply(v2); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.metrics.active.WithLabelValues("test", "svc")); got != 1 {
		t.Errorf("%v sessions open after the new table, want 1", got)
	}
	for i := range 3 {
		if got := gone.ask(fmt.Sprint(i), 200*time.Millisecond); !strings.HasPrefix(got, "error: ") {
			t.Errorf("revoked client got a reply %q", got)
		}
	}
	if got := count(m.metrics.dropped, "test", "svc", reasonDenied); got != 3 {
		t.Errorf("denied datagrams %v, want 3", got)
	}
	if got := kept.ask("on", testTimeout); got != "svc:on" {
		t.Errorf("admitted client: %q", got)
	}
	if got := count(m.metrics.sessions, "test", "svc"); got != 2 {
		t.Errorf("sessions opened %v, want 2 (the admitted one kept its session)", got)
	}
}
