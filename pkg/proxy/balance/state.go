package balance

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// States holds the endpoint state of one route by address. A new version
// of the route (a reload) takes over the states of its predecessor, so
// ejections, error streaks and in-flight counts survive table changes;
// addresses the new version lacks are left behind with the old one.
type States struct {
	mu   sync.Mutex // guards m, prev and every state's ejection fields
	m    map[string]*state
	prev map[string]*state // the predecessor's states not yet taken over
}

// state is one endpoint's health and load.
type state struct {
	inflight    atomic.Int64
	consecutive atomic.Int32 // gateway errors in a row
	// until is the end of the current or last ejection, in Unix
	// nanoseconds; 0 if never ejected. Read without the lock by Pick.
	until atomic.Int64

	// Under States.mu:
	level int    // ejection multiplier: the next ejection lasts base*(level+1)
	total uint64 // ejections ever
}

func (s *state) ejected(now int64) bool {
	return now != 0 && s.until.Load() > now
}

// NewStates returns the states of a new route version; prev (the route's
// previous version, or nil) hands over the state of every address both
// have.
func NewStates(prev *States) *States {
	s := &States{m: map[string]*state{}}
	if prev != nil {
		prev.mu.Lock()
		s.prev = make(map[string]*state, len(prev.m))
		for k, v := range prev.m {
			s.prev[k] = v
		}
		prev.mu.Unlock()
	}
	return s
}

// get returns the state of address: its own, the predecessor's, or new.
func (s *States) get(address string) *state {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.m[address]
	if st == nil {
		if st = s.prev[address]; st == nil {
			st = &state{}
		}
		delete(s.prev, address)
		s.m[address] = st
	}
	return st
}

// eject ejects e if its streak still stands and its backend may lose one
// more endpoint. The ejection lasts the base time multiplied by the
// endpoint's ejection level, capped; the level rises with each ejection
// and falls by one for every base period the endpoint then stays in
// service, so an endpoint that recovered for good starts again from the
// base time.
func (s *Set) eject(e *Endpoint) {
	o := s.opts.Outlier
	s.states.mu.Lock()
	defer s.states.mu.Unlock()
	now := s.opts.Now().UnixNano()
	if e.s.ejected(now) || e.s.consecutive.Load() < int32(o.ConsecutiveErrors) {
		return // another request ejected it, or a success broke the streak
	}
	e.s.consecutive.Store(0)
	ejected := 0
	for _, x := range e.grp.eps {
		if x.s.ejected(now) {
			ejected++
		}
	}
	if ejected >= e.grp.maxEjected {
		if s.opts.OnOverflow != nil {
			s.opts.OnOverflow(e.Address)
		}
		return
	}
	base := time.Duration(o.BaseEjectionTime)
	if until := e.s.until.Load(); until != 0 && base > 0 {
		served := time.Duration(now - until)
		e.s.level = max(e.s.level-int(served/base), 0)
	}
	e.s.level++
	d := min(base*time.Duration(e.s.level), time.Duration(o.MaxEjectionTime))
	e.s.until.Store(now + int64(d))
	e.s.total++
	if s.opts.OnEject != nil {
		s.opts.OnEject(e.Address, d)
	}
}

// EndpointState is one endpoint's state, as shown on the admin endpoint.
type EndpointState struct {
	Address string `json:"address"`
	// Ejected is true while the endpoint is out of balancing, until
	// EjectedUntil.
	Ejected      bool       `json:"ejected"`
	EjectedUntil *time.Time `json:"ejectedUntil,omitempty"`
	// Ejections counts the endpoint's ejections by this proxy; Level is
	// the multiplier of its next ejection's length.
	Ejections uint64 `json:"ejections"`
	Level     int    `json:"level"`
	// ConsecutiveErrors is its current streak of gateway errors.
	ConsecutiveErrors int `json:"consecutiveErrors"`
	// InFlight counts its requests or connections in flight.
	InFlight int64 `json:"inFlight"`
}

// Snapshot returns the state of every endpoint of sets, each address once,
// sorted by address. The sets should share one States (the backend lists of
// one route).
func Snapshot(sets ...*Set) []EndpointState {
	var out []EndpointState
	seen := map[*state]bool{}
	for _, s := range sets {
		now := s.opts.Now().UnixNano()
		s.states.mu.Lock()
		for _, e := range s.endpoints {
			if seen[e.s] {
				continue // the same address in two backend lists
			}
			seen[e.s] = true
			st := EndpointState{
				Address:           e.Address,
				Ejections:         e.s.total,
				Level:             e.s.level,
				ConsecutiveErrors: int(e.s.consecutive.Load()),
				InFlight:          e.s.inflight.Load(),
			}
			if e.s.ejected(now) {
				st.Ejected = true
				until := time.Unix(0, e.s.until.Load()).UTC()
				st.EjectedUntil = &until
			}
			out = append(out, st)
		}
		s.states.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b EndpointState) int { return cmp.Compare(a.Address, b.Address) })
	return out
}

// Snapshot returns the state of s's endpoints; see the function Snapshot.
func (s *Set) Snapshot() []EndpointState { return Snapshot(s) }

// Ejected counts the endpoints of sets ejected now, each address once.
func Ejected(sets ...*Set) int {
	seen := map[*state]bool{}
	for _, s := range sets {
		if s.opts.Outlier == nil {
			continue
		}
		now := s.opts.Now().UnixNano()
		for _, e := range s.endpoints {
			if e.s.ejected(now) {
				seen[e.s] = true
			}
		}
	}
	return len(seen)
}

// Ejected counts s's endpoints ejected now.
func (s *Set) Ejected() int { return Ejected(s) }

// States returns the endpoint states s uses, to hand over to the next
// version of its route (NewStates).
func (s *Set) States() *States { return s.states }

// ZoneOf returns the zone of node in t's Nodes, "" when unknown.
func ZoneOf(t *table.Table, node string) string {
	if node == "" {
		return ""
	}
	for _, n := range t.Nodes {
		if n.Name == node {
			return n.Zone
		}
	}
	return ""
}
