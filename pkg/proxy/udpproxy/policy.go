package udpproxy

import (
	"net/netip"
	"time"

	"github.com/nodemesh/nodemesh/pkg/proxy/balance"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// routePolicy is a UDP route's traffic policy (issue 11,
// docs/traffic-policy.md).
type routePolicy struct {
	// idle ends a session idle this long: the route's IdleTimeout, else
	// the Manager's.
	idle time.Duration
	// bal chooses a new session's endpoint by locality, with each
	// endpoint's open sessions as its load; nil without locality.
	bal *balance.Set
}

func (m *Manager) newRoutePolicy(t *table.Table, sr *table.StreamRoute) (routePolicy, error) {
	p := routePolicy{idle: m.opts.IdleTimeout}
	if sr.IdleTimeout > 0 {
		p.idle = sr.IdleTimeout.D()
	}
	if sr.Locality != nil {
		var err error
		p.bal, err = balance.New(sr.Backends, balance.Options{
			Locality: sr.Locality, Node: m.opts.Node, Zone: balance.ZoneOf(t, m.opts.Node),
		}, m.prevStates(sr.ProxyPort))
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

// prevStates returns a new States taking over the endpoint states of the
// route serving port now, so open sessions stay counted across a reload.
func (m *Manager) prevStates(port int32) *balance.States {
	if l, ok := m.ports.Get(port); ok {
		if r := l.route.Load(); r != nil && r.policy.bal != nil {
			return balance.NewStates(r.policy.bal.States())
		}
	}
	return balance.NewStates(nil)
}

// picked is an endpoint a session holds from a balance.Set.
type picked struct {
	set *balance.Set
	ep  *balance.Endpoint
}

// release ends the session's count on its endpoint; nil does nothing.
func (p *picked) release() {
	if p != nil {
		p.set.Release(p.ep)
	}
}

// candidates returns the endpoints to try for a new session: pick.Set's
// failover order, or with locality the one endpoint the balance.Set chose
// (opening a UDP socket fails only on local errors, so there is nothing to
// fail over from).
func (r *route) candidates() ([]netip.AddrPort, *picked) {
	if r.policy.bal == nil {
		return r.set.Candidates(connectAttempts), nil
	}
	ep := r.policy.bal.Pick(nil)
	if ep == nil {
		return nil, nil
	}
	return []netip.AddrPort{ep.AddrPort}, &picked{set: r.policy.bal, ep: ep}
}
