package balance

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func ep(addr, node, zone string) table.Endpoint {
	return table.Endpoint{Address: addr, Node: node, Zone: zone}
}

func backend(name string, weight int32, eps ...table.Endpoint) table.Backend {
	return table.Backend{Service: table.ServiceRef{Namespace: "shop", Name: name}, Weight: weight, Endpoints: eps}
}

// three endpoints: one on node-a (zone z1), one on node-b (z1), one on
// node-c (z2). The proxy runs on node-a in z1.
var spread = backend("web", 1,
	ep("10.0.0.1:80", "node-a", "z1"),
	ep("10.0.0.2:80", "node-b", "z1"),
	ep("10.0.0.3:80", "node-c", "z2"),
)

func mustSet(t *testing.T, bs []table.Backend, opts Options, states *States) *Set {
	t.Helper()
	s, err := New(bs, opts, states)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// picks counts which addresses n picks (each released at once) choose.
func picks(s *Set, n int, avoid []*Endpoint) map[string]int {
	out := map[string]int{}
	for range n {
		e := s.Pick(avoid)
		out[e.Address]++
		s.Done(e, false)
	}
	return out
}

func TestLocalityTiers(t *testing.T) {
	tests := []struct {
		name string
		loc  *table.Locality
		node string
		zone string
		want map[string]int // of 90 picks
	}{
		{"off: round robin over all", nil, "node-a", "z1", map[string]int{"10.0.0.1:80": 30, "10.0.0.2:80": 30, "10.0.0.3:80": 30}},
		{"node: only the local endpoint", &table.Locality{Prefer: table.LocalityNode}, "node-a", "z1", map[string]int{"10.0.0.1:80": 90}},
		{"node, no local pod: the zone", &table.Locality{Prefer: table.LocalityNode}, "node-x", "z1", map[string]int{"10.0.0.1:80": 45, "10.0.0.2:80": 45}},
		{"zone: every endpoint of the zone", &table.Locality{Prefer: table.LocalityZone}, "node-c", "z1", map[string]int{"10.0.0.1:80": 45, "10.0.0.2:80": 45}},
		{"zone unknown: everything", &table.Locality{Prefer: table.LocalityZone}, "node-a", "", map[string]int{"10.0.0.1:80": 30, "10.0.0.2:80": 30, "10.0.0.3:80": 30}},
		{"node and zone unknown: everything", &table.Locality{Prefer: table.LocalityNode}, "", "", map[string]int{"10.0.0.1:80": 30, "10.0.0.2:80": 30, "10.0.0.3:80": 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSet(t, []table.Backend{spread}, Options{Locality: tt.loc, Node: tt.node, Zone: tt.zone}, nil)
			got := picks(s, 90, nil)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("picks = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLocalitySpillsOverWhenOverloaded(t *testing.T) {
	s := mustSet(t, []table.Backend{spread}, Options{Locality: &table.Locality{Prefer: table.LocalityNode, MaxInFlight: 2}, Node: "node-a", Zone: "z1"}, nil)
	held := []*Endpoint{s.Pick(nil), s.Pick(nil)} // the local endpoint is at its limit
	for _, e := range held {
		if e.Address != "10.0.0.1:80" {
			t.Fatalf("first picks went to %s", e.Address)
		}
	}
	if got := picks(s, 10, nil); got["10.0.0.2:80"] != 10 {
		t.Fatalf("with the local endpoint overloaded, picks = %v, want the zone's endpoint", got)
	}
	// The zone tier overloaded too: the rest of the cluster.
	zone := []*Endpoint{s.Pick(nil), s.Pick(nil)}
	if got := picks(s, 4, nil); got["10.0.0.3:80"] != 4 {
		t.Fatalf("with node and zone overloaded, picks = %v", got)
	}
	for _, e := range append(held, zone...) {
		s.Release(e)
	}
	if got := picks(s, 5, nil); got["10.0.0.1:80"] != 5 {
		t.Fatalf("once the load is gone, picks = %v, want local again", got)
	}
}

func TestAvoidTriesOthersFirst(t *testing.T) {
	s := mustSet(t, []table.Backend{spread}, Options{Locality: &table.Locality{Prefer: table.LocalityNode}, Node: "node-a", Zone: "z1"}, nil)
	local := s.Pick(nil)
	s.Done(local, true)
	next := s.Pick([]*Endpoint{local})
	if next.Address != "10.0.0.2:80" {
		t.Fatalf("a retry after the local endpoint failed went to %s, want the zone's", next.Address)
	}
	s.Done(next, true)
	all := []*Endpoint{local, next, s.endpoints[2]}
	if e := s.Pick(all); e == nil {
		t.Fatal("with every endpoint tried, Pick gave nothing; want one anyway")
	} else {
		s.Done(e, false)
	}
}

func TestOutlierEjectionAndReturn(t *testing.T) {
	clk := newClock()
	var ejections []time.Duration
	o := &table.Outlier{ConsecutiveErrors: 3, BaseEjectionTime: table.Duration(10 * time.Second), MaxEjectionTime: table.Duration(25 * time.Second), MaxEjectionPercent: 50}
	s := mustSet(t, []table.Backend{spread}, Options{Outlier: o, Now: clk.Now, OnEject: func(_ string, d time.Duration) { ejections = append(ejections, d) }}, nil)
	bad := s.endpoints[1]
	fail := func(n int) {
		for range n {
			s.Done(s.acquire(bad), true)
		}
	}

	fail(2)
	s.Done(s.acquire(bad), false) // a success breaks the streak
	fail(2)
	if s.Ejected() != 0 {
		t.Fatal("ejected before 3 errors in a row")
	}
	fail(1)
	if s.Ejected() != 1 || len(ejections) != 1 || ejections[0] != 10*time.Second {
		t.Fatalf("after 3 errors in a row: ejected %d, ejections %v", s.Ejected(), ejections)
	}
	if got := picks(s, 20, nil); got[bad.Address] != 0 {
		t.Fatalf("an ejected endpoint was picked: %v", got)
	}
	clk.Add(10 * time.Second)
	if got := picks(s, 30, nil); got[bad.Address] != 10 {
		t.Fatalf("after the base ejection time: %v, want it back in the rotation", got)
	}
	// Ejected again at once: twice the base; a third time: capped at 25s.
	fail(3)
	clk.Add(20 * time.Second)
	fail(3)
	if want := []time.Duration{10 * time.Second, 20 * time.Second, 25 * time.Second}; fmt.Sprint(ejections) != fmt.Sprint(want) {
		t.Fatalf("ejection lengths %v, want %v", ejections, want)
	}
	// A long healthy run brings the level back down: after 25s ejected and
	// 30s (three base periods) in service the next ejection is the base.
	clk.Add(55 * time.Second)
	fail(3)
	if got := ejections[len(ejections)-1]; got != 10*time.Second {
		t.Fatalf("after recovering, the next ejection lasts %v, want the base 10s", got)
	}
}

func TestMaxEjectionShare(t *testing.T) {
	o := func(pct int) *table.Outlier {
		return &table.Outlier{ConsecutiveErrors: 1, BaseEjectionTime: table.Duration(time.Minute), MaxEjectionTime: table.Duration(time.Minute), MaxEjectionPercent: pct}
	}
	tests := []struct {
		name    string
		eps     int
		pct     int
		ejected int
	}{
		{"one endpoint is never ejected", 1, 100, 0},
		{"10% of 3 still ejects one", 3, 10, 1},
		{"50% of 4", 4, 50, 2},
		{"100% keeps one", 4, 100, 3},
		{"10% of 25", 25, 10, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var eps []table.Endpoint
			for i := range tt.eps {
				eps = append(eps, ep(fmt.Sprintf("10.0.1.%d:80", i+1), "", ""))
			}
			overflow := 0
			s := mustSet(t, []table.Backend{backend("web", 1, eps...)}, Options{Outlier: o(tt.pct), OnOverflow: func(string) { overflow++ }}, nil)
			for _, e := range s.Endpoints() {
				s.Done(s.acquire(e), true)
			}
			if s.Ejected() != tt.ejected || overflow != tt.eps-tt.ejected {
				t.Fatalf("ejected %d (overflow %d) of %d, want %d", s.Ejected(), overflow, tt.eps, tt.ejected)
			}
			if e := s.Pick(nil); e == nil || e.s.ejected(time.Now().UnixNano()) {
				t.Fatalf("Pick chose %v, want an endpoint in service", e)
			}
		})
	}
}

func TestStatesSurviveAReload(t *testing.T) {
	clk := newClock()
	o := &table.Outlier{ConsecutiveErrors: 1, BaseEjectionTime: table.Duration(time.Minute), MaxEjectionTime: table.Duration(time.Minute), MaxEjectionPercent: 50}
	v1 := mustSet(t, []table.Backend{spread}, Options{Outlier: o, Now: clk.Now}, NewStates(nil))
	held := v1.Pick(nil)
	v1.Done(v1.acquire(v1.endpoints[2]), true)
	if v1.Ejected() != 1 {
		t.Fatal("not ejected")
	}
	// Version 2 adds an endpoint and drops none: the ejection and the
	// request in flight carry over.
	more := spread
	more.Endpoints = append(append([]table.Endpoint(nil), spread.Endpoints...), ep("10.0.0.4:80", "node-d", "z2"))
	v2 := mustSet(t, []table.Backend{more}, Options{Outlier: o, Now: clk.Now}, NewStates(v1.states))
	if v2.Ejected() != 1 {
		t.Fatalf("the reload returned an ejected endpoint early: %+v", v2.Snapshot())
	}
	v1.Release(held) // a request of the old version ends
	for _, st := range v2.Snapshot() {
		if st.InFlight != 0 {
			t.Fatalf("in-flight count not shared across versions: %+v", st)
		}
	}
	// Version 3 drops the ejected endpoint: its state is gone with it.
	fewer := backend("web", 1, spread.Endpoints[:2]...)
	v3 := mustSet(t, []table.Backend{fewer}, Options{Outlier: o, Now: clk.Now}, NewStates(v2.states))
	if n := len(v3.states.m); n != 2 {
		t.Fatalf("version 3 keeps %d states, want 2", n)
	}
}

func TestWeightsAcrossBackends(t *testing.T) {
	s := mustSet(t, []table.Backend{
		backend("v1", 80, ep("10.0.2.1:80", "", "")),
		backend("v2", 20, ep("10.0.2.2:80", "", "")),
		backend("empty", 50),
	}, Options{Locality: &table.Locality{Prefer: table.LocalityNode}}, nil)
	got := picks(s, 10000, nil)
	if v2 := got["10.0.2.2:80"]; v2 < 1800 || v2 > 2200 {
		t.Fatalf("80/20 over 10,000 picks: %v", got)
	}
}

func TestEmptySet(t *testing.T) {
	s := mustSet(t, []table.Backend{backend("web", 1)}, Options{}, nil)
	if s.Pick(nil) != nil {
		t.Fatal("an empty set picked an endpoint")
	}
	if _, err := New([]table.Backend{backend("web", 1, ep("pod:80", "", ""))}, Options{}, nil); err == nil {
		t.Fatal("a bad address was accepted")
	}
}

func TestSnapshot(t *testing.T) {
	clk := newClock()
	o := &table.Outlier{ConsecutiveErrors: 2, BaseEjectionTime: table.Duration(time.Minute), MaxEjectionTime: table.Duration(time.Minute), MaxEjectionPercent: 50}
	s := mustSet(t, []table.Backend{spread}, Options{Outlier: o, Now: clk.Now}, nil)
	s.Done(s.acquire(s.endpoints[0]), true)
	s.Done(s.acquire(s.endpoints[1]), true)
	s.Done(s.acquire(s.endpoints[1]), true)
	snap := s.Snapshot()
	if len(snap) != 3 || snap[0].ConsecutiveErrors != 1 || snap[0].Ejected || !snap[1].Ejected || snap[1].Ejections != 1 ||
		snap[1].EjectedUntil == nil || !snap[1].EjectedUntil.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("snapshot %+v", snap)
	}
}

// TestConcurrentUse runs picks, outcomes and reloads at once, for -race.
func TestConcurrentUse(t *testing.T) {
	o := &table.Outlier{ConsecutiveErrors: 2, BaseEjectionTime: table.Duration(time.Millisecond), MaxEjectionTime: table.Duration(5 * time.Millisecond), MaxEjectionPercent: 50}
	opts := Options{Outlier: o, Locality: &table.Locality{Prefer: table.LocalityNode, MaxInFlight: 3}, Node: "node-a", Zone: "z1"}
	s := mustSet(t, []table.Backend{spread}, opts, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				e := s.Pick(nil)
				s.Done(e, (i+g)%3 == 0)
			}
		}()
	}
	for range 20 {
		_ = mustSet(t, []table.Backend{spread}, opts, NewStates(s.states))
		_ = s.Snapshot()
	}
	wg.Wait()
	for _, st := range s.Snapshot() {
		if st.InFlight != 0 {
			t.Fatalf("in-flight count leaked: %+v", st)
		}
	}
}
