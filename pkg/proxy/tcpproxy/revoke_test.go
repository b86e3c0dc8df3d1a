package tcpproxy

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// dialFrom connects to port from the loopback address src (127.0.0.2,
// 127.0.0.3...), so tests can play distinct clients.
func dialFrom(t *testing.T, src string, port int32) *client {
	t.Helper()
	d := net.Dialer{Timeout: testTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(testTimeout))
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c.(*net.TCPConn), r: bufio.NewReader(c)}
}

// TestNewTableClosesConnectionsItNoLongerAdmits: access taken away by a
// table (version 2 here refuses 127.0.0.2) closes that source's open
// connections, and only those.
func TestNewTableClosesConnectionsItNoLongerAdmits(t *testing.T) {
	backend := nameServer(t, "svc")
	revoked := netip.MustParseAddr("127.0.0.2")
	m, _ := newTestManager(t, Options{Admit: func(tb *table.Table, _ *table.StreamRoute, src netip.Addr) bool {
		return tb.Version < 2 || src != revoked
	}})
	port := freePort(t)
	v1 := tableOf(streamRoute("svc", port, backendOf("svc", 1, backend.addr)))
	v1.Version = 1
	if err := m.Apply(v1); err != nil {
		t.Fatal(err)
	}
	gone, kept := dialFrom(t, "127.0.0.2", port), dialFrom(t, "127.0.0.3", port)
	for _, c := range []*client{gone, kept} {
		if got := c.line(); got != "svc" {
			t.Fatalf("before the new table: %q", got)
		}
	}
	v2 := tableOf(streamRoute("svc", port, backendOf("svc", 1, backend.addr)))
	v2.Version = 2
	if err := m.Apply(v2); err != nil {
		t.Fatal(err)
	}
	if got := gone.echo("still there?"); !strings.HasPrefix(got, "error: ") {
		t.Errorf("revoked source's connection answered %q, want it closed", got)
	}
	if got := kept.echo("still there?"); got != "still there?" {
		t.Errorf("admitted source's connection: %q", got)
	}
	if got := dialFrom(t, "127.0.0.2", port).line(); !strings.HasPrefix(got, "error: ") {
		t.Errorf("new connection of the revoked source got %q, want it closed at accept", got)
	}
}
