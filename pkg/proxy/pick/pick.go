// Package pick chooses backend endpoints for the stream proxies (TCP and
// UDP): first a Backend by weight, then an endpoint of that Backend in
// round-robin order, and on a failed connect the next candidates in a
// deterministic order.
//
// It is separate from oxy's roundrobin because stream proxies pick once per
// connection or session, need an ordered failover list, and must not pull in
// an http.Handler chain.
package pick

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// Set is an immutable, concurrency-safe chooser over the backends of one
// route. Build a new Set for each table rather than mutating one.
type Set struct {
	groups []group
	total  int64 // sum of weights of groups that have endpoints
	// intn returns a uniform number in [0, n); tests replace it.
	intn func(n int64) int64
}

type group struct {
	weight    int64
	endpoints []netip.AddrPort
	next      atomic.Uint64 // round-robin cursor
}

// New builds a Set from a route's backends. Backends with weight 0 or with no
// endpoints take no traffic: their share goes to the others (a TrafficSplit
// weight of 0 drains a backend; an empty backend would only fail). It
// returns an error naming the first endpoint address that is not "ip:port".
func New(backends []table.Backend) (*Set, error) {
	s := &Set{intn: rand.Int64N}
	s.groups = make([]group, 0, len(backends))
	for _, b := range backends {
		if b.Weight < 0 {
			return nil, fmt.Errorf("backend %s: negative weight %d", b.Service, b.Weight)
		}
		eps := make([]netip.AddrPort, 0, len(b.Endpoints))
		for _, e := range b.Endpoints {
			ap, err := netip.ParseAddrPort(e.Address)
			if err != nil {
				return nil, fmt.Errorf("backend %s: endpoint %q: %w", b.Service, e.Address, err)
			}
			eps = append(eps, ap)
		}
		if b.Weight == 0 || len(eps) == 0 {
			continue
		}
		s.groups = append(s.groups, group{weight: int64(b.Weight), endpoints: eps})
		s.total += int64(b.Weight)
	}
	return s, nil
}

// Endpoints reports how many endpoints can take traffic.
func (s *Set) Endpoints() int {
	n := 0
	for i := range s.groups {
		n += len(s.groups[i].endpoints)
	}
	return n
}

// Contains reports whether ap is one of the endpoints that can take traffic.
func (s *Set) Contains(ap netip.AddrPort) bool {
	for i := range s.groups {
		for _, e := range s.groups[i].endpoints {
			if e == ap {
				return true
			}
		}
	}
	return false
}

// Candidates returns up to max endpoints to try in order. The first is the
// weighted choice: a backend drawn by weight, then that backend's next
// endpoint in round-robin order. The rest continue round the same backend,
// then visit the other backends in table order, so a failed connect moves
// on to a different endpoint and no endpoint is tried twice. It returns nil
// when no endpoint can take traffic.
func (s *Set) Candidates(max int) []netip.AddrPort {
	if s.total == 0 || max <= 0 {
		return nil
	}
	if n := s.Endpoints(); max > n {
		max = n
	}
	out := make([]netip.AddrPort, 0, max)
	first := s.drawGroup()
	for k := 0; k < len(s.groups) && len(out) < max; k++ {
		g := &s.groups[(first+k)%len(s.groups)]
		// Only the chosen group's cursor advances: failover visits must
		// not skew the round-robin of the others.
		start := g.next.Load()
		if k == 0 {
			start = g.next.Add(1) - 1
		}
		for j := 0; j < len(g.endpoints) && len(out) < max; j++ {
			out = append(out, g.endpoints[(start+uint64(j))%uint64(len(g.endpoints))])
		}
	}
	return out
}

// drawGroup returns the index of a group drawn with probability
// weight/total.
func (s *Set) drawGroup() int {
	if len(s.groups) == 1 {
		return 0
	}
	r := s.intn(s.total)
	for i := range s.groups {
		r -= s.groups[i].weight
		if r < 0 {
			return i
		}
	}
	return len(s.groups) - 1
}
