package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// streamACLTable: shop/client may use the TCP route db and the UDP route
// dns; shop/intruder may use the TCP route cache.
func streamACLTable(version uint64, db, cache, dns int32, tcpEndpoint, udpEndpoint string, pods ...table.Pod) *table.Table {
	allow := func(ids ...table.Identity) []table.StreamAllow { return []table.StreamAllow{{Sources: ids}} }
	route := func(name string, port, proxyPort int32, endpoint string, a []table.StreamAllow) table.StreamRoute {
		return table.StreamRoute{Service: svcRef(name), Port: port, ProxyPort: proxyPort, Backends: []table.Backend{backendAt(name, endpoint)}, Allow: a}
	}
	tcp := []table.StreamRoute{
		route("db", 5432, db, tcpEndpoint, allow(saClient)),
		route("cache", 6379, cache, tcpEndpoint, allow(saIntruder)),
	}
	if cache < db {
		tcp[0], tcp[1] = tcp[1], tcp[0]
	}
	return &table.Table{Schema: table.SchemaVersion, Version: version, ACL: true, Pods: pods,
		TCP: tcp,
		UDP: []table.StreamRoute{route("dns", 53, dns, udpEndpoint, allow(saClient))},
	}
}

type streamPorts struct{ db, cache, dns int32 }

func newStreamACLProxy(t *testing.T) (*Proxy, streamPorts, func(version uint64, pods ...table.Pod)) {
	t.Helper()
	p := newTestProxy(t, testConfig())
	ports := streamPorts{freePort(t, "tcp"), freePort(t, "tcp"), freePort(t, "udp")}
	tcpBackend, udpBackend := tcpEcho(t), udpEcho(t)
	apply := func(version uint64, pods ...table.Pod) {
		t.Helper()
		if err := p.Apply(streamACLTable(version, ports.db, ports.cache, ports.dns, tcpBackend, udpBackend, pods...)); err != nil {
			t.Fatal(err)
		}
	}
	return p, ports, apply
}

// closedAtAccept reports whether the proxy closed c without a byte: the
// read ends with EOF (or a reset) at once.
func closedAtAccept(s string) bool {
	return strings.HasPrefix(s, "error: ") && !strings.Contains(s, "timeout")
}

func TestTCPAccessControl(t *testing.T) {
	p, ports, apply := newStreamACLProxy(t)
	apply(1, podAt(ipClient, "client-0", "client"), podAt(ipIntruder, "intruder-0", "intruder"))
	if got := roundTrip(tcpFrom(t, ipClient, ports.db), "select 1", 5*time.Second); got != "select 1" {
		t.Errorf("allowed client on db: %q", got)
	}
	if got := roundTrip(tcpFrom(t, ipIntruder, ports.db), "select 1", 5*time.Second); !closedAtAccept(got) {
		t.Errorf("forbidden client on db: %q, want the connection closed", got)
	}
	if got := roundTrip(tcpFrom(t, ipNoPod, ports.db), "select 1", 5*time.Second); !closedAtAccept(got) {
		t.Errorf("source without a pod on db: %q, want the connection closed", got)
	}
	if got := roundTrip(tcpFrom(t, ipIntruder, ports.cache), "PING", 5*time.Second); got != "PING" {
		t.Errorf("intruder on its own route: %q", got)
	}
	if got := deniedCount(p, "tcp", "db", "not-allowed"); got != 1 {
		t.Errorf("denied tcp db not-allowed = %v, want 1", got)
	}
	if got := deniedCount(p, "tcp", "db", "no-identity"); got != 1 {
		t.Errorf("denied tcp db no-identity = %v, want 1", got)
	}
}

func TestUDPAccessControl(t *testing.T) {
	p, ports, apply := newStreamACLProxy(t)
	apply(1, podAt(ipClient, "client-0", "client"), podAt(ipIntruder, "intruder-0", "intruder"))
	if got := ask(udpFrom(t, ipClient, ports.dns), "query", 5*time.Second); got != "query" {
		t.Errorf("allowed client: %q", got)
	}
	intruder, noPod := udpFrom(t, ipIntruder, ports.dns), udpFrom(t, ipNoPod, ports.dns)
	for range 3 {
		if got := ask(intruder, "query", 200*time.Millisecond); !strings.HasPrefix(got, "error: ") {
			t.Errorf("forbidden client got a reply %q", got)
		}
	}
	if got := ask(noPod, "query", 200*time.Millisecond); !strings.HasPrefix(got, "error: ") {
		t.Errorf("source without a pod got a reply %q", got)
	}
	if got := deniedCount(p, "udp", "dns", "not-allowed"); got != 3 {
		t.Errorf("denied udp dns not-allowed = %v, want 3", got)
	}
	if got := deniedCount(p, "udp", "dns", "no-identity"); got != 1 {
		t.Errorf("denied udp dns no-identity = %v, want 1", got)
	}
	dropped, err := testutil.GatherAndCount(p.Registry(), "nodemesh_proxy_udp_dropped_total")
	if err != nil || dropped == 0 {
		t.Errorf("udp dropped series: %d (%v)", dropped, err)
	}
}

// TestStreamPodIPReuse: a deleted pod's open TCP connection is closed and
// its UDP session ended by the next table; its IP, reused by a pod of
// another service account, has that account's rights only.
func TestStreamPodIPReuse(t *testing.T) {
	p, ports, apply := newStreamACLProxy(t)
	apply(1, podAt(ipClient, "client-0", "client"))
	conn, dgram := tcpFrom(t, ipClient, ports.db), udpFrom(t, ipClient, ports.dns)
	if got := roundTrip(conn, "a", 5*time.Second); got != "a" {
		t.Fatalf("tcp before deletion: %q", got)
	}
	if got := ask(dgram, "a", 5*time.Second); got != "a" {
		t.Fatalf("udp before deletion: %q", got)
	}

	apply(2) // the client pod is deleted
	if got := roundTrip(conn, "b", 5*time.Second); !closedAtAccept(got) {
		t.Errorf("open tcp connection of the deleted pod: %q, want it closed", got)
	}
	if got := ask(dgram, "b", 200*time.Millisecond); !strings.HasPrefix(got, "error: ") {
		t.Errorf("udp session of the deleted pod answered %q", got)
	}
	if got := roundTrip(tcpFrom(t, ipClient, ports.db), "b", 5*time.Second); !closedAtAccept(got) {
		t.Errorf("new tcp connection from the deleted pod's IP: %q", got)
	}

	apply(3, podAt(ipClient, "intruder-1", "intruder")) // the IP is reused
	if got := roundTrip(tcpFrom(t, ipClient, ports.db), "c", 5*time.Second); !closedAtAccept(got) {
		t.Errorf("reused IP on the old pod's route: %q, want it closed", got)
	}
	if got := ask(dgram, "c", 200*time.Millisecond); !strings.HasPrefix(got, "error: ") {
		t.Errorf("reused IP on the old pod's UDP route got %q", got)
	}
	if got := roundTrip(tcpFrom(t, ipClient, ports.cache), "c", 5*time.Second); got != "c" {
		t.Errorf("reused IP on its new pod's route: %q", got)
	}
	if got := deniedCount(p, "udp", "dns", "no-identity"); got < 1 {
		t.Errorf("denied udp dns no-identity = %v, want at least 1", got)
	}
	if got := deniedCount(p, "udp", "dns", "not-allowed"); got < 1 {
		t.Errorf("denied udp dns not-allowed = %v, want at least 1", got)
	}
}

// TestDeniedSeriesLeaveWithTheirService: the denial series of a service
// that leaves the table are deleted, as the other proxy series are.
func TestDeniedSeriesLeaveWithTheirService(t *testing.T) {
	p, ports, apply := newStreamACLProxy(t)
	apply(1)
	roundTrip(tcpFrom(t, ipNoPod, ports.db), "x", 5*time.Second)
	if n, _ := testutil.GatherAndCount(p.Registry(), "nodemesh_proxy_acl_denied_total"); n != 1 {
		t.Fatalf("%d denial series, want 1", n)
	}
	if err := p.Apply(&table.Table{Schema: table.SchemaVersion, Version: 2, ACL: true}); err != nil {
		t.Fatal(err)
	}
	if n, _ := testutil.GatherAndCount(p.Registry(), "nodemesh_proxy_acl_denied_total"); n != 0 {
		t.Errorf("%d denial series after shop/db left the table, want 0", n)
	}
}
