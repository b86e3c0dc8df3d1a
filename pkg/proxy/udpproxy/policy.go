package udpproxy

import (
	"net/netip"
	"time"

	"github.com/nodemesh/nodemesh/pkg/proxy/balance"
	"github.com/nodemesh/nodemesh/pkg/proxy/streamcore"
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
	bal, err := streamcore.Balance(t, sr, m.opts.Node, m.prevBalance)
	return routePolicy{idle: streamcore.IdleTimeout(sr, m.opts.IdleTimeout), bal: bal}, err
}

// prevBalance returns the balance.Set of the route serving port now, if
// any, so that the new one keeps its open sessions counted across a
// reload.
func (m *Manager) prevBalance(port int32) *balance.Set {
	l, ok := m.ports.Get(port)
	if !ok {
		return nil
	}
	return l.route.Load().policy.bal // Get returns only listeners with a route
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
