package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/pkg/acl"
	"github.com/nodemesh/nodemesh/pkg/proxy/identity"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// accessControl enforces Table.ACL on the three data planes through their
// Admit hooks (see docs/acl.md). A client's identity comes only from the
// source address of its connection, looked up in the table's Pods; no
// header is ever read for it.
//
// Per table it builds an aclState (the identity index and the compiled
// policy) before any data plane serves that table, and keeps the state of
// the table before it too: a request that picked its route just before a
// reload still finds its table's state.
type accessControl struct {
	cur, prev atomic.Pointer[aclState]
	denied    *prometheus.CounterVec
	log       *slog.Logger
}

// aclState is the access control of one table.
type aclState struct {
	table  *table.Table
	ids    *identity.Index // nil when the table has ACL off
	policy *acl.Policy     // nil when the table has ACL off
}

// Values of the protocol label of nodemesh_proxy_acl_denied_total.
const (
	protoHTTP = "http"
	protoTCP  = "tcp"
	protoUDP  = "udp"
)

func newAccessControl(reg prometheus.Registerer, log *slog.Logger) *accessControl {
	a := &accessControl{
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodemesh_proxy_acl_denied_total",
			Help: "Requests (http), connections (tcp) and datagrams (udp) refused by access control, by destination service and reason (no-identity, not-allowed, no-matching-rule).",
		}, []string{"protocol", "namespace", "service", "reason"}),
		log: log,
	}
	reg.MustRegister(a.denied)
	return a
}

// prepare builds the state of t. It reuses the compiled matches of the
// serving table, so a reload recompiles only what changed.
func (a *accessControl) prepare(t *table.Table) (*aclState, error) {
	s := &aclState{table: t}
	if !t.ACL {
		return s, nil
	}
	var prev *acl.Policy
	if cur := a.cur.Load(); cur != nil {
		prev = cur.policy
	}
	policy, err := acl.Compile(t, prev)
	if err != nil {
		return nil, err
	}
	s.ids, s.policy = identity.Build(t.Pods), policy
	return s, nil
}

// install makes s the current state, keeping the one it replaces as the
// previous, and returns that one (so that a failed apply can install it
// back).
func (a *accessControl) install(s *aclState) *aclState {
	old := a.cur.Swap(s)
	a.prev.Store(old)
	return old
}

// forgetServices deletes the denial series of services that t no longer
// serves, as the other proxy metrics do.
func (a *accessControl) forgetServices(old, t *table.Table) {
	if old == nil {
		return
	}
	keep := map[table.ServiceRef]bool{}
	for _, svc := range servicesOf(t) {
		keep[svc] = true
	}
	for _, svc := range servicesOf(old) {
		if !keep[svc] {
			keep[svc] = true // delete once
			a.denied.DeletePartialMatch(prometheus.Labels{"namespace": svc.Namespace, "service": svc.Name})
		}
	}
}

func servicesOf(t *table.Table) []table.ServiceRef {
	var out []table.ServiceRef
	for i := range t.HTTP {
		out = append(out, t.HTTP[i].Service)
	}
	for _, routes := range [][]table.StreamRoute{t.TCP, t.UDP} {
		for i := range routes {
			out = append(out, routes[i].Service)
		}
	}
	return out
}

// state returns the state of t: the current or the previous one. Any other
// table (a data plane rolled back to a table that was never installed, or
// a request that slept through two reloads) gets a state built on the spot:
// slow, but never a wrong answer.
func (a *accessControl) state(t *table.Table) *aclState {
	if s := a.cur.Load(); s != nil && s.table == t {
		return s
	}
	if s := a.prev.Load(); s != nil && s.table == t {
		return s
	}
	s, err := a.prepare(t)
	if err != nil {
		// The table validated when it was applied, so this cannot happen;
		// a state without policy refuses everything.
		a.log.Error("access control: cannot compile a table being served", "version", t.Version, "error", err)
		return &aclState{table: t, ids: identity.Build(nil)}
	}
	return s
}

// source finds the identity behind addr, nil when there is none.
func (s *aclState) source(addr netip.Addr) *table.Identity {
	if src := s.ids.Lookup(addr); src != nil {
		return &src.ID
	}
	return nil
}

// admitHTTP is the HTTP router's Admit hook. The client is RemoteAddr, the
// peer address of the connection: never X-Forwarded-For, X-Real-Ip or any
// other header. With a TrafficSplit the route is the root service's (the
// split is resolved inside this proxy), so its Allow applies.
func (a *accessControl) admitHTTP(t *table.Table, route *table.HTTPRoute, r *http.Request) error {
	if !t.ACL {
		return nil
	}
	s := a.state(t)
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		addr = ap.Addr().Unmap()
	}
	id := s.source(addr)
	reason := acl.NotAllowed // a route the policy lacks admits nobody
	if rule := s.policy.HTTP(route.Service, route.Port); rule != nil {
		reason = rule.Check(id, r)
	} else if id == nil {
		reason = acl.NoIdentity
	}
	if reason == acl.Allowed {
		return nil
	}
	a.denied.WithLabelValues(protoHTTP, route.Service.Namespace, route.Service.Name, reason.String()).Inc()
	msg := acl.HTTPDenial(reason, addr, id, route, r)
	a.log.Debug("access denied", "protocol", protoHTTP, "reason", reason.String(), "detail", msg)
	return denial(msg)
}

// admitTCP is the TCP manager's Admit hook, asked at accept and, for open
// connections, whenever a new table is applied.
func (a *accessControl) admitTCP(t *table.Table, route *table.StreamRoute, src netip.Addr) bool {
	if !t.ACL {
		return true
	}
	s := a.state(t)
	return a.admitStream(protoTCP, s, s.policy.TCP(route.ProxyPort), route, src)
}

// admitUDP is the UDP manager's Admit hook, asked for each datagram of a
// client without a session and, for open sessions, whenever a new table is
// applied.
func (a *accessControl) admitUDP(t *table.Table, route *table.StreamRoute, src netip.Addr) bool {
	if !t.ACL {
		return true
	}
	s := a.state(t)
	return a.admitStream(protoUDP, s, s.policy.UDP(route.ProxyPort), route, src)
}

func (a *accessControl) admitStream(proto string, s *aclState, rule *acl.StreamRule, route *table.StreamRoute, src netip.Addr) bool {
	id := s.source(src)
	reason := acl.NotAllowed
	if rule != nil {
		reason = rule.Check(id)
	} else if id == nil {
		reason = acl.NoIdentity
	}
	if reason == acl.Allowed {
		return true
	}
	a.denied.WithLabelValues(proto, route.Service.Namespace, route.Service.Name, reason.String()).Inc()
	if a.log.Enabled(context.Background(), slog.LevelDebug) {
		a.log.Debug("access denied", "protocol", proto, "reason", reason.String(), "detail", acl.StreamDenial(reason, proto, src, id, route))
	}
	return false
}

// denial is a refusal whose text is the 403 body.
type denial string

func (d denial) Error() string { return string(d) }
