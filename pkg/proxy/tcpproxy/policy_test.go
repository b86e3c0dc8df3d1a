package tcpproxy

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodemesh/nodemesh/pkg/table"
)

func TestRouteIdleTimeoutOverridesTheDefault(t *testing.T) {
	backend := nameServer(t, "b")
	m, _ := newTestManager(t, Options{IdleTimeout: time.Hour})
	port := freePort(t)
	r := streamRoute("svc", port, backendOf("svc", 1, backend.addr))
	r.IdleTimeout = table.Duration(200 * time.Millisecond)
	if err := m.Apply(tableOf(r)); err != nil {
		t.Fatal(err)
	}
	c := dial(t, port)
	if got := c.line(); got != "b" {
		t.Fatalf("greeting %q", got)
	}
	start := time.Now()
	if got := c.line(); got[:6] != "error:" {
		t.Fatalf("an idle connection got %q, want it closed", got)
	}
	// Closed between one and two idle periods after the last byte; far
	// from the manager's hour either way.
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("closed after %v, want about 200-400ms", took)
	}
}

func TestMaxConnections(t *testing.T) {
	backend := nameServer(t, "b")
	m, _ := newTestManager(t, Options{})
	port := freePort(t)
	r := streamRoute("svc", port, backendOf("svc", 1, backend.addr))
	r.MaxConnections = 2
	if err := m.Apply(tableOf(r)); err != nil {
		t.Fatal(err)
	}
	a, b := dial(t, port), dial(t, port)
	for _, c := range []*client{a, b} {
		if got := c.line(); got != "b" {
			t.Fatalf("a connection under the limit got %q", got)
		}
	}
	// A reload keeps the count: the port's two connections are still open.
	r.Backends = []table.Backend{backendOf("svc", 1, backend.addr, deadAddr(t))}
	if err := m.Apply(tableOf(r)); err != nil {
		t.Fatal(err)
	}
	if got := dial(t, port).line(); got[:6] != "error:" {
		t.Fatalf("a third connection got %q, want it closed", got)
	}
	limited := func() float64 {
		return testutil.ToFloat64(m.metrics.connections.WithLabelValues("test", "svc", resultLimited))
	}
	if limited() != 1 {
		t.Fatalf("result=limited counted %v, want 1", limited())
	}
	a.c.Close()
	waitFor(t, "the closed connection to leave the count", func() bool {
		c := dial(t, port)
		ok := c.line() == "b"
		c.c.Close()
		return ok
	})
}

func TestLocalityPrefersTheNode(t *testing.T) {
	local, zone := nameServer(t, "local"), nameServer(t, "zone")
	m, _ := newTestManager(t, Options{Node: "node-a"})
	port := freePort(t)
	route := func(localAddr string) *table.Table {
		r := streamRoute("svc", port, table.Backend{Service: table.ServiceRef{Namespace: "test", Name: "svc"}, Weight: 1, Endpoints: []table.Endpoint{
			{Address: localAddr, Node: "node-a", Zone: "z1"},
			{Address: zone.addr, Node: "node-b", Zone: "z1"},
		}})
		r.Locality = &table.Locality{Prefer: table.LocalityNode, MaxInFlight: 2}
		tb := tableOf(r)
		tb.Nodes = []table.Node{{Name: "node-a", Zone: "z1"}}
		return tb
	}
	if err := m.Apply(route(local.addr)); err != nil {
		t.Fatal(err)
	}
	// Two connections fill the local endpoint (maxInFlight 2); the third
	// spills over to the zone.
	var open []*client
	for i, want := range []string{"local", "local", "zone"} {
		c := dial(t, port)
		if got := c.line(); got != want {
			t.Fatalf("connection %d went to %q, want %q", i, got, want)
		}
		open = append(open, c)
	}
	for _, c := range open {
		c.c.Close()
	}
	waitFor(t, "the local endpoint to take connections again", func() bool {
		c := dial(t, port)
		defer c.c.Close()
		return c.line() == "local"
	})
	// The local pod dies: connects fail over to the zone.
	if err := m.Apply(route(deadAddr(t))); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		c := dial(t, port)
		if got := c.line(); got != "zone" {
			t.Fatalf("with the local endpoint dead, got %q", got)
		}
		c.c.Close()
	}
}
