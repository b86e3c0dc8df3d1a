package topology

import (
	"slices"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// Split is one TrafficSplit (split v1alpha4 semantics).
type Split struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Service is the root service, in Namespace.
	Service string `json:"service"`
	// Backends are as written, duplicates merged, sorted by service.
	Backends []SplitBackend `json:"backends"`
	// Matches are the A/B references, in the order written. Requests (or
	// stream ports) they select go to the backends; the rest to the root.
	Matches []SplitMatch `json:"matches,omitempty"`
	// Active is true when the split is applied. An inactive split has an
	// ObjectError saying why, and its root is served as a plain service.
	Active bool `json:"active"`
	// Leaves are the backends with nested splits flattened (only when
	// Active), sorted by service; see flatten for the integer weights.
	Leaves []SplitBackend `json:"leaves,omitempty"`
}

// SplitBackend is a service, in the split's namespace, and its weight.
type SplitBackend struct {
	Service string `json:"service"`
	Weight  int32  `json:"weight"`
}

// SplitMatch references an HTTPRouteGroup, TCPRoute or UDPRoute in the
// split's namespace.
type SplitMatch struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// SMI kinds the builders understand.
const (
	KindService        = "Service"
	KindPod            = "Pod"
	KindTrafficSplit   = "TrafficSplit"
	KindHTTPRouteGroup = "HTTPRouteGroup"
	KindTCPRoute       = "TCPRoute"
	KindUDPRoute       = "UDPRoute"
	KindTrafficTarget  = "TrafficTarget"
	KindServiceAccount = "ServiceAccount"
)

// HTTPRouteGroup is an SMI HTTPRouteGroup with its valid matches.
type HTTPRouteGroup struct {
	Namespace string      `json:"namespace"`
	Name      string      `json:"name"`
	Matches   []HTTPMatch `json:"matches"`
}

// Match returns the match with this name, or nil.
func (g *HTTPRouteGroup) Match(name string) *HTTPMatch {
	for i := range g.Matches {
		if g.Matches[i].Name == name {
			return &g.Matches[i]
		}
	}
	return nil
}

// HTTPMatch is one valid match of a route group: every regex compiled, the
// path regex anchored at the start, methods upper-case and sorted (empty
// means any, "*" is folded into empty), headers sorted by name.
type HTTPMatch struct {
	// Name is the match's name, or "#<index>" when it has none.
	Name  string          `json:"name"`
	Match table.HTTPMatch `json:"match"`
}

// StreamRoute is an SMI TCPRoute or UDPRoute.
type StreamRoute struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// MatchName is spec.matches.name.
	MatchName string `json:"matchName,omitempty"`
	// AllPorts is true when the spec lists no ports: it selects every port.
	AllPorts bool `json:"allPorts"`
	// Ports are the valid ports it selects, sorted.
	Ports []int32 `json:"ports,omitempty"`
}

// Selects reports whether the route selects port.
func (r *StreamRoute) Selects(port int32) bool {
	return r.AllPorts || slices.Contains(r.Ports, port)
}

// TrafficTarget is an SMI TrafficTarget (access v1alpha3), normalised.
type TrafficTarget struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Destination is the ServiceAccount whose pods are protected. An omitted
	// namespace has been set to the TrafficTarget's own.
	Destination table.Identity `json:"destination"`
	// Port narrows the destination to one port; 0 means every port.
	Port int32 `json:"port,omitempty"`
	// Sources may call the destination (source namespaces default to the
	// TrafficTarget's own, too). Sorted.
	Sources []table.Identity `json:"sources"`
	// Rules are the valid rules; a rule naming a missing route or match is
	// dropped with an error (allowing less, never more).
	Rules []TargetRule `json:"rules"`
	// Active is false when the destination is unusable (not a
	// ServiceAccount); such a target allows nothing.
	Active bool `json:"active"`
}

// TargetRule names a route spec and, for HTTPRouteGroup, some of its matches
// (none named means all of them).
type TargetRule struct {
	Kind    string   `json:"kind"`
	Name    string   `json:"name"`
	Matches []string `json:"matches,omitempty"`
}
