package tcpproxy

import (
	"net"
	"time"

	"github.com/nodemesh/nodemesh/pkg/proxy/balance"
	"github.com/nodemesh/nodemesh/pkg/proxy/streamcore"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// routePolicy is a TCP route's traffic policy (issue 11,
// docs/traffic-policy.md).
type routePolicy struct {
	// idle closes a connection idle this long: the route's IdleTimeout,
	// else the Manager's.
	idle time.Duration
	// maxConns caps open connections of the port; 0 means no cap.
	maxConns int64
	// bal chooses endpoints by locality, with each endpoint's open
	// connections as its load; nil on routes without locality, which use
	// pick.Set.
	bal *balance.Set
}

func (m *Manager) newRoutePolicy(t *table.Table, sr *table.StreamRoute) (routePolicy, error) {
	bal, err := streamcore.Balance(t, sr, m.opts.Node, m.prevBalance)
	return routePolicy{idle: streamcore.IdleTimeout(sr, m.opts.IdleTimeout), maxConns: int64(sr.MaxConnections), bal: bal}, err
}

// prevBalance returns the balance.Set of the route serving port now, if
// any, so that the new one keeps its open connections counted across a
// reload.
func (m *Manager) prevBalance(port int32) *balance.Set {
	l, ok := m.ports.Get(port)
	if !ok {
		return nil
	}
	return l.route.Load().policy.bal // Get returns only listeners with a route
}

// enter counts a new connection of the port, or refuses it when the
// route's max-connections are open already. A refused connection is closed
// at once: TCP has no way to say why (an HTTP route answers 503 instead).
func (l *listener) enter(r *route) bool {
	n := l.open.Add(1)
	if r.policy.maxConns > 0 && n > r.policy.maxConns {
		l.open.Add(-1)
		return false
	}
	return true
}

// dial connects to a backend endpoint: by locality through the route's
// balance.Set when it has one, otherwise in pick.Set's order. ep is the
// endpoint chosen from the balance.Set, to Release when the connection
// ends; nil otherwise.
func (l *listener) dial(r *route) (*net.TCPConn, string, *balance.Endpoint) {
	if r.policy.bal == nil {
		c, result := l.connect(r)
		return c, result, nil
	}
	var tried []*balance.Endpoint
	for range l.mgr.opts.ConnectAttempts {
		ep := r.policy.bal.Pick(tried)
		if ep == nil {
			if len(tried) == 0 {
				return nil, resultNoEndpoints, nil
			}
			break
		}
		if contains(tried, ep) {
			r.policy.bal.Release(ep) // every endpoint was tried
			break
		}
		c, err := l.mgr.dialer.DialContext(l.ctx, "tcp", ep.AddrPort.String())
		if err == nil {
			r.policy.bal.Observe(ep, false)
			return c.(*net.TCPConn), resultOK, ep
		}
		r.policy.bal.Done(ep, true)
		tried = append(tried, ep)
		if l.ctx.Err() != nil {
			break
		}
		l.mgr.opts.Logger.Debug("tcp proxy: connect failed", "service", r.stream.Service.String(), "endpoint", ep.Address, "error", err)
	}
	return nil, resultConnectError, nil
}

func contains(list []*balance.Endpoint, e *balance.Endpoint) bool {
	for _, x := range list {
		if x == e {
			return true
		}
	}
	return false
}
