package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// TestRejectedTableKeepsTheServingACL: when a data plane refuses a table,
// the access control of the table still serving stays in force.
func TestRejectedTableKeepsTheServingACL(t *testing.T) {
	p, ports, apply := newStreamACLProxy(t)
	apply(1, podAt(ipClient, "client-0", "client"))
	serving := p.Applied()

	// Version 2 would hand the client's IP to an intruder pod, and asks for
	// a UDP port someone else holds, so the UDP manager refuses it after
	// the TCP manager took it.
	busyPort := freePort(t, "udp")
	busy, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", busyPort))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bad := streamACLTable(2, ports.db, ports.cache, busyPort, "127.0.0.1:1", "127.0.0.1:1", podAt(ipClient, "intruder-1", "intruder"))
	if err := p.Apply(bad); err == nil {
		t.Fatal("the table with a busy UDP port was applied")
	}
	if p.Applied() != serving {
		t.Fatal("the rejected table is reported as applied")
	}
	if s := p.acl.cur.Load(); s == nil || s.table != serving {
		t.Fatal("the serving table's access control is not current")
	}
	if got := roundTrip(tcpFrom(t, ipClient, ports.db), "still", 5*time.Second); got != "still" {
		t.Errorf("client after the rejected table: %q", got)
	}
}

// TestAdmitForATableNotInstalled: a data plane may ask about a table whose
// state is neither current nor previous (one it rolled back to, or a
// request that slept through two reloads); the answer is built on the spot
// and is the right one.
func TestAdmitForATableNotInstalled(t *testing.T) {
	p := newTestProxy(t, testConfig())
	other := streamACLTable(7, 10001, 10002, 11001, "127.0.0.1:1", "127.0.0.1:1", podAt(ipClient, "client-0", "client"))
	for i := range 3 { // current and previous are other tables
		st, err := p.acl.prepare(streamACLTable(uint64(i+1), 10001, 10002, 11001, "127.0.0.1:1", "127.0.0.1:1"))
		if err != nil {
			t.Fatal(err)
		}
		p.acl.install(st)
	}
	client, intruder := netip.MustParseAddr(ipClient), netip.MustParseAddr(ipIntruder)
	db := &other.TCP[0] // sorted by proxy port: db 10001, cache 10002
	if db.Service.Name != "db" {
		t.Fatalf("route %s, want db", db.Service)
	}
	if !p.acl.admitTCP(other, db, client) {
		t.Error("client refused on a table not installed")
	}
	if p.acl.admitTCP(other, db, intruder) {
		t.Error("intruder admitted on a table not installed")
	}
	if !p.acl.admitUDP(other, &other.UDP[0], client) {
		t.Error("client refused on UDP of a table not installed")
	}
	off := &table.Table{Schema: table.SchemaVersion, TCP: other.TCP}
	if !p.acl.admitTCP(off, db, intruder) {
		t.Error("a table with ACL off refused a connection")
	}
}
