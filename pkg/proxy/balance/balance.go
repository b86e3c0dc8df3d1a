// Package balance chooses a backend endpoint when a route's traffic policy
// needs per-endpoint state (issue 11, docs/traffic-policy.md):
//
//   - locality: endpoints on the proxy's own node, then in its zone, then any
//     (table.Locality), passing over a tier whose endpoints are all ejected,
//     overloaded (MaxInFlight requests or connections in flight), or already
//     tried by this request;
//   - outlier detection: an endpoint that fails ConsecutiveErrors times in a
//     row is ejected for a time that grows with each ejection
//     (table.Outlier), never more than a share of a backend at once.
//
// Plain routes do not use it: the HTTP proxy keeps oxy's round robin and the
// stream proxies pkg/proxy/pick, which hold no per-endpoint state and so
// cost nothing extra. oxy's roundrobin cannot be used here: it has no notion
// of tiers, and ejecting through RemoveServer/UpsertServer would take its
// lock on every request and forget an endpoint's history on each reload.
//
// A Set is built per table version; its endpoint state lives in a States,
// which the next version of the same route inherits, so a reload (an
// endpoint added elsewhere, say) neither returns an ejected endpoint early
// nor forgets in-flight counts.
package balance

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// Options configures a Set.
type Options struct {
	// Locality, when set, orders endpoints in tiers; nil means one tier.
	Locality *table.Locality
	// Node and Zone place the proxy; either may be empty (unknown).
	Node, Zone string
	// Outlier, when set, ejects failing endpoints; nil means never.
	Outlier *table.Outlier
	// OnEject is called after an endpoint was ejected, with how long;
	// OnOverflow when one reached the error threshold but the backend had
	// its share of ejected endpoints already. Both may be nil. They run
	// with the States lock held and must not call back into the Set.
	OnEject    func(address string, d time.Duration)
	OnOverflow func(address string)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Endpoint is one endpoint of a Set.
type Endpoint struct {
	// Index numbers the Set's endpoints from 0, in backend then address
	// order, so callers can keep per-endpoint data (a URL) in a slice.
	Index int
	// Address is the table's "ip:port"; AddrPort the same, parsed.
	Address  string
	AddrPort netip.AddrPort
	// Node and Zone are the endpoint's, from the table.
	Node, Zone string

	s   *state
	grp *group
}

// Set chooses among the weighted backends of one route.
type Set struct {
	opts      Options
	states    *States
	groups    []*group
	total     int64 // sum of weights of groups with endpoints
	endpoints []*Endpoint
	maxIn     int64 // overload threshold; 0: none
}

// group is one weighted backend.
type group struct {
	weight int64
	eps    []*Endpoint
	// tiers index eps from the most preferred; the last is the catch-all.
	tiers   [][]int
	cursors []atomic.Uint64 // one round-robin cursor per tier
	all     atomic.Uint64   // cursor of the fallback pass
	// maxEjected is how many of eps may be ejected at once.
	maxEjected int
}

// New builds the Set of backends. states carries endpoint state across
// table versions (NewStates(previous)); nil starts afresh. Backends with
// weight 0 or no endpoints take no traffic.
func New(backends []table.Backend, opts Options, states *States) (*Set, error) {
	if states == nil {
		states = NewStates(nil)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Set{opts: opts, states: states}
	if opts.Locality != nil {
		s.maxIn = int64(opts.Locality.MaxInFlight)
	}
	for _, b := range backends {
		if b.Weight <= 0 || len(b.Endpoints) == 0 {
			continue
		}
		g := &group{weight: int64(b.Weight)}
		for _, te := range b.Endpoints {
			ap, err := netip.ParseAddrPort(te.Address)
			if err != nil {
				return nil, fmt.Errorf("backend %s: endpoint %q: %w", b.Service, te.Address, err)
			}
			e := &Endpoint{Index: len(s.endpoints), Address: te.Address, AddrPort: ap, Node: te.Node, Zone: te.Zone, grp: g}
			e.s = states.get(te.Address)
			g.eps = append(g.eps, e)
			s.endpoints = append(s.endpoints, e)
		}
		g.tiers = tiers(g.eps, opts)
		g.cursors = make([]atomic.Uint64, len(g.tiers))
		g.maxEjected = maxEjected(len(g.eps), opts.Outlier)
		s.groups = append(s.groups, g)
		s.total += g.weight
	}
	return s, nil
}

// tiers splits eps by preference: with Locality node, [own node, own zone,
// rest]; with zone, [own zone, rest]; without, [all]. Empty tiers are left
// out, and an unknown node or zone simply matches nothing.
func tiers(eps []*Endpoint, opts Options) [][]int {
	rank := func(e *Endpoint) int { return 0 }
	n := 1
	if l := opts.Locality; l != nil {
		switch l.Prefer {
		case table.LocalityNode:
			n = 3
			rank = func(e *Endpoint) int {
				switch {
				case opts.Node != "" && e.Node == opts.Node:
					return 0
				case opts.Zone != "" && e.Zone == opts.Zone:
					return 1
				}
				return 2
			}
		case table.LocalityZone:
			n = 2
			rank = func(e *Endpoint) int {
				if opts.Zone != "" && e.Zone == opts.Zone {
					return 0
				}
				return 1
			}
		}
	}
	byRank := make([][]int, n)
	for i, e := range eps {
		r := rank(e)
		byRank[r] = append(byRank[r], i)
	}
	out := byRank[:0]
	for _, t := range byRank {
		if len(t) > 0 {
			out = append(out, t)
		}
	}
	return out
}

// maxEjected is how many of n endpoints may be ejected at once: the
// configured share rounded down, but at least one, and never all of them
// (a bad rollout must not empty a backend).
func maxEjected(n int, o *table.Outlier) int {
	if o == nil || n < 2 {
		return 0
	}
	return min(max(n*o.MaxEjectionPercent/100, 1), n-1)
}

// Endpoints returns every endpoint of the Set, by Index.
func (s *Set) Endpoints() []*Endpoint { return s.endpoints }

// Pick chooses an endpoint for one request or connection and counts it in
// flight; the caller must call Done (or Observe and Release) for it exactly
// once. avoid lists endpoints this request already tried; they are chosen
// again only when nothing else is left. It returns nil when the Set has no
// endpoint.
//
// A backend is drawn by weight; within it, the first tier with an endpoint
// that is not ejected, not avoided and not overloaded wins (overload only
// counts outside the last tier: from there on there is nowhere to spill
// to), round robin inside the tier. If the drawn backend has none, the
// other backends are asked in table order; then any endpoint not ejected;
// then anything.
func (s *Set) Pick(avoid []*Endpoint) *Endpoint {
	if s.total == 0 {
		return nil
	}
	var now int64
	if s.opts.Outlier != nil {
		now = s.opts.Now().UnixNano()
	}
	first := s.draw()
	for k := range s.groups {
		if e := s.groups[(first+k)%len(s.groups)].pick(now, avoid, s.maxIn); e != nil {
			return s.acquire(e)
		}
	}
	for k := range s.groups {
		if e := s.groups[(first+k)%len(s.groups)].fallback(now, avoid, true); e != nil {
			return s.acquire(e)
		}
	}
	return s.acquire(s.groups[first].fallback(now, nil, false))
}

func (s *Set) acquire(e *Endpoint) *Endpoint {
	e.s.inflight.Add(1)
	return e
}

// draw returns a group index with probability weight/total.
func (s *Set) draw() int {
	if len(s.groups) == 1 {
		return 0
	}
	x := rand.Int64N(s.total)
	for i, g := range s.groups {
		x -= g.weight
		if x < 0 {
			return i
		}
	}
	return len(s.groups) - 1
}

// pick scans the tiers in order for a usable endpoint.
func (g *group) pick(now int64, avoid []*Endpoint, maxIn int64) *Endpoint {
	last := len(g.tiers) - 1
	for t, tier := range g.tiers {
		start := g.cursors[t].Add(1) - 1
		for j := range tier {
			e := g.eps[tier[(start+uint64(j))%uint64(len(tier))]]
			if e.s.ejected(now) || contains(avoid, e) {
				continue
			}
			if maxIn > 0 && t < last && e.s.inflight.Load() >= maxIn {
				continue
			}
			return e
		}
	}
	return nil
}

// fallback returns the next endpoint in plain round robin that is not
// avoided and, when healthyOnly, not ejected; nil if there is none.
func (g *group) fallback(now int64, avoid []*Endpoint, healthyOnly bool) *Endpoint {
	start := g.all.Add(1) - 1
	for j := range g.eps {
		e := g.eps[(start+uint64(j))%uint64(len(g.eps))]
		if contains(avoid, e) || (healthyOnly && e.s.ejected(now)) {
			continue
		}
		return e
	}
	return nil
}

func contains(list []*Endpoint, e *Endpoint) bool {
	for _, x := range list {
		if x == e {
			return true
		}
	}
	return false
}

// Done ends a request picked from s: failed says whether it was a gateway
// error (a 5xx, a connect or network failure).
func (s *Set) Done(e *Endpoint, failed bool) {
	s.Observe(e, failed)
	s.Release(e)
}

// Release ends e's in-flight count from Pick (a TCP connection releases
// when it closes, long after it observed its connect).
func (s *Set) Release(e *Endpoint) { e.s.inflight.Add(-1) }

// Observe records the outcome of one attempt on e for outlier detection.
func (s *Set) Observe(e *Endpoint, failed bool) {
	o := s.opts.Outlier
	if o == nil {
		return
	}
	if !failed {
		if e.s.consecutive.Load() != 0 {
			e.s.consecutive.Store(0)
		}
		return
	}
	if e.s.consecutive.Add(1) >= int32(o.ConsecutiveErrors) {
		s.eject(e)
	}
}
