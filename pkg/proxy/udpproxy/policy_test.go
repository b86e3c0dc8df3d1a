package udpproxy

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodemesh/nodemesh/pkg/table"
)

func TestRouteIdleTimeoutOverridesTheDefault(t *testing.T) {
	backend := echoServer(t, "svc")
	m := newTestManager(t, Options{IdleTimeout: time.Hour})
	port := freePort(t)
	r := routeOf("svc", port, backend)
	r.IdleTimeout = table.Duration(150 * time.Millisecond)
	if err := m.Apply(tableOf(r)); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, port)
	if got := c.ask("x", testTimeout); got != "svc:x" {
		t.Fatalf("reply %q", got)
	}
	active := m.metrics.active.WithLabelValues("test", "svc")
	deadline := time.Now().Add(testTimeout)
	for testutil.ToFloat64(active) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the session outlived the route's idle timeout (the manager's is an hour)")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLocalityPicksTheLocalEndpoint(t *testing.T) {
	local, far := echoServer(t, "local"), echoServer(t, "far")
	m := newTestManager(t, Options{Node: "node-a"})
	port := freePort(t)
	r := routeOf("svc", port)
	r.Backends[0].Endpoints = []table.Endpoint{{Address: far, Node: "node-b", Zone: "z2"}, {Address: local, Node: "node-a", Zone: "z1"}}
	r.Locality = &table.Locality{Prefer: table.LocalityNode, MaxInFlight: 3}
	if err := m.Apply(tableOf(r)); err != nil {
		t.Fatal(err)
	}
	// Three clients fill the local endpoint; the fourth spills over.
	for i, want := range []string{"local", "local", "local", "far"} {
		c := newClient(t, port)
		msg := fmt.Sprint(i)
		if got := c.ask(msg, testTimeout); got != want+":"+msg {
			t.Fatalf("client %d got %q, want %s", i, got, want)
		}
	}
	// Closing the sessions (the port leaves the table) ends their counts.
	l, _ := m.ports.Get(port)
	bal := l.route.Load().policy.bal
	if err := m.Apply(tableOf()); err != nil {
		t.Fatal(err)
	}
	for _, st := range bal.Snapshot() {
		if st.InFlight != 0 {
			t.Fatalf("a closed session is still counted: %+v", st)
		}
	}
}
