package httpproxy

import (
	"net/http"
	"reflect"
	"sync/atomic"

	"github.com/nodemesh/nodemesh/pkg/proxy/balance"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// routePolicy is the traffic-policy state of one route (issue 11,
// docs/traffic-policy.md) that must outlive a table version: when a reload
// rebuilds the route (an endpoint changed), the new version takes over its
// predecessor's endpoint health, in-flight count and retry budget, so a
// reload neither lifts a limit nor returns an ejected endpoint early.
// A route with no policy has a routePolicy with every field nil, and its
// chain is exactly the plain one.
type routePolicy struct {
	// zone is the proxy's zone when the route was built; a route with
	// locality is rebuilt when it changes.
	zone string
	// states and sets exist when the route balances with per-endpoint
	// state (outlier detection or locality).
	states *balance.States
	sets   []*balance.Set
	// inflight counts requests for max-requests.
	inflight *atomic.Int64
	// budget limits retries.
	budget *retryBudget
}

// noPolicy is the state of every route that keeps none. It is never
// written to.
var noPolicy routePolicy

// newRoutePolicy returns the policy state of r, taking over prev's (the
// route's serving version, or nil) where the policy still asks for it.
func newRoutePolicy(r *table.HTTPRoute, prev *route, zone string, pm *servicePolicyMetrics) *routePolicy {
	mw := &r.Middleware
	if mw.Outlier == nil && mw.Locality == nil && mw.MaxRequests == 0 && (mw.RetryBudget == nil || mw.RetryAttempts <= 1) {
		return &noPolicy // a plain route: nothing to keep, nothing to allocate
	}
	var old *routePolicy
	if prev != nil {
		old = prev.pol
	}
	p := &routePolicy{zone: zone}
	if mw.Outlier != nil || mw.Locality != nil {
		var prevStates *balance.States
		if old != nil {
			prevStates = old.states
		}
		p.states = balance.NewStates(prevStates)
	}
	if mw.MaxRequests > 0 {
		if old != nil && old.inflight != nil {
			p.inflight = old.inflight
		} else {
			p.inflight = new(atomic.Int64)
		}
	}
	if b := mw.RetryBudget; b != nil && mw.RetryAttempts > 1 {
		if old != nil && old.budget != nil && old.budget.cfg == *b {
			p.budget = old.budget
		} else {
			p.budget = newRetryBudget(*b, pm.budgetExhausted())
		}
	}
	return p
}

// reusable reports whether route r can keep serving spec unchanged: the
// same definition and, with locality, the same zone of this proxy.
func (r *route) reusable(spec *table.HTTPRoute, zone string) bool {
	if !reflect.DeepEqual(&r.spec, spec) {
		return false
	}
	return spec.Middleware.Locality == nil || r.pol == nil || r.pol.zone == zone
}

// backends returns the handler of one backend list: oxy's round robin for
// a plain route, a balance.Set when the route has outlier detection or
// locality.
func (rt *Router) backends(p *routePolicy, bs []table.Backend, r *table.HTTPRoute, fwd http.Handler) (http.Handler, error) {
	if p.states == nil {
		return newBackendSet(bs, r.Scheme, fwd, r.Service)
	}
	return rt.newBalancedBackends(p, bs, r, fwd)
}
