package proxy

import "github.com/nodemesh/nodemesh/pkg/proxy/httpproxy"

// State is the proxy's live traffic-policy state, served by the admin
// endpoint's /config?state (docs/traffic-policy.md).
type State struct {
	// Node is the node name this proxy places itself on for locality.
	Node string `json:"node"`
	// HTTP lists the HTTP routes that keep state: outlier ejections and
	// endpoint loads, max-requests in flight.
	HTTP []httpproxy.RouteState `json:"http"`
}

// State returns the live traffic-policy state; it has the type any so the
// admin package needs no data-plane types.
func (p *Proxy) State() any {
	return State{Node: p.cfg.NodeName(), HTTP: p.http.PolicyState()}
}
