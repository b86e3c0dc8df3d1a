package httpproxy

import (
	"cmp"
	"slices"

	"github.com/nodemesh/nodemesh/pkg/proxy/balance"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// RouteState is the live traffic-policy state of one HTTP route, for the
// admin endpoint's /config?state.
type RouteState struct {
	Service table.ServiceRef `json:"service"`
	Port    int32            `json:"port"`
	// Zone is this proxy's zone as the route's locality sees it.
	Zone string `json:"zone,omitempty"`
	// InFlight counts the requests in flight, on routes with max-requests.
	InFlight *int64 `json:"inFlight,omitempty"`
	// Endpoints are the endpoint states, on routes with outlier detection
	// or locality: ejections, error streaks, in-flight counts.
	Endpoints []balance.EndpointState `json:"endpoints,omitempty"`
}

// PolicyState returns the state of every serving route that keeps some,
// sorted by service then port.
func (rt *Router) PolicyState() []RouteState {
	p := rt.current.Load()
	var out []RouteState
	for _, r := range p.routes {
		pol := r.pol
		if pol == nil || (pol.states == nil && pol.inflight == nil) {
			continue
		}
		st := RouteState{Service: r.spec.Service, Port: r.spec.Port}
		if r.spec.Middleware.Locality != nil {
			st.Zone = pol.zone
		}
		if pol.inflight != nil {
			n := pol.inflight.Load()
			st.InFlight = &n
		}
		if pol.states != nil {
			st.Endpoints = balance.Snapshot(pol.sets...)
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b RouteState) int {
		return cmp.Or(cmp.Compare(a.Service.Namespace, b.Service.Namespace), cmp.Compare(a.Service.Name, b.Service.Name), cmp.Compare(a.Port, b.Port))
	})
	return out
}
