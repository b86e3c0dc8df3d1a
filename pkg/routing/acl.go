package routing

import (
	"cmp"
	"net"
	"reflect"
	"slices"
	"strconv"

	"github.com/nodemesh/nodemesh/pkg/shadow"
	"github.com/nodemesh/nodemesh/pkg/table"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

// acl fills the routes' Allow lists from the TrafficTargets (access v1alpha3
// semantics, default deny). A TrafficTarget's destination is a
// ServiceAccount; it covers a route when the route's pods run as it:
//
//   - The destination identities of a route are the service accounts of the
//     ready pods of the service being called (the root). A root with no pods
//     of its own (a selector-less split root) takes those of its split's
//     backends.
//   - Every backend, including split backends, keeps only endpoints whose pod
//     runs as one of those identities: a client allowed to reach the root is
//     split across the backends that serve the destination service account,
//     and never reaches a pod it was not granted. An endpoint with no known
//     pod has no identity and is dropped too.
//   - With one destination identity, each active TrafficTarget for it adds
//     one Allow: its sources, with the matches of its rules of the route's
//     kind (HTTPRouteGroup for HTTP, TCPRoute for TCP, UDPRoute for UDP).
//     A TrafficTarget with no such rule allows nothing.
//   - With several, a (source, match) passes only when a TrafficTarget of
//     every one of them allows it (the same match, compared exactly).
//   - destination.port, and the ports of a TCPRoute/UDPRoute rule, are pod
//     ports: they cover a route only when every endpoint it can reach uses a
//     listed port (when it has none, its numeric targetPort is used).
type acl struct {
	topo *topology.Topology
	pods map[string]*topology.Pod
	// targets holds the active TrafficTargets with sources by destination,
	// in topology (namespace, name) order.
	targets map[table.Identity][]*topology.TrafficTarget
}

func newACL(topo *topology.Topology) *acl {
	a := &acl{topo: topo, pods: make(map[string]*topology.Pod, len(topo.Pods)), targets: map[table.Identity][]*topology.TrafficTarget{}}
	for _, p := range topo.Pods {
		a.pods[p.IP] = p
	}
	for _, tt := range topo.TrafficTargets {
		if tt.Active && len(tt.Sources) > 0 {
			a.targets[tt.Destination] = append(a.targets[tt.Destination], tt)
		}
	}
	return a
}

// identity returns the service account of the pod behind addr ("ip:port").
func (a *acl) identity(addr string) (table.Identity, bool) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return table.Identity{}, false
	}
	p := a.pods[host]
	if p == nil {
		return table.Identity{}, false
	}
	return table.Identity{Namespace: p.Namespace, ServiceAccount: p.ServiceAccount}, true
}

// destinations returns the sorted identities behind the root's own
// endpoints, or behind the split backends when the root has none.
func (a *acl) destinations(own []table.Backend, split []table.Backend) []table.Identity {
	var out []table.Identity
	for _, list := range [][]table.Backend{own, split} {
		for _, b := range list {
			for _, e := range b.Endpoints {
				if id, ok := a.identity(e.Address); ok {
					out = append(out, id)
				}
			}
		}
		if len(out) > 0 {
			break
		}
	}
	slices.SortFunc(out, compareIdentity)
	return slices.Compact(out)
}

// filter keeps, in each backend, the endpoints whose pod runs as one of ids,
// and drops backends left empty. If none is left, one empty backend (the
// first) remains, so the route still exists and fails as "no endpoint".
func (a *acl) filter(backends []table.Backend, ids []table.Identity) []table.Backend {
	out := make([]table.Backend, 0, len(backends))
	for _, b := range backends {
		eps := make([]table.Endpoint, 0, len(b.Endpoints))
		for _, e := range b.Endpoints {
			if id, ok := a.identity(e.Address); ok && slices.Contains(ids, id) {
				eps = append(eps, e)
			}
		}
		if len(eps) > 0 {
			b.Endpoints = eps
			out = append(out, b)
		}
	}
	if len(out) == 0 && len(backends) > 0 {
		first := backends[0]
		first.Endpoints = []table.Endpoint{}
		out = append(out, first)
	}
	return out
}

// podPorts returns the sorted pod ports a route's backends reach, or the
// port's numeric targetPort (else the port itself) when they reach none.
func podPorts(p *topology.ServicePort, lists ...[]table.Backend) []int32 {
	var out []int32
	for _, list := range lists {
		for _, b := range list {
			for _, e := range b.Endpoints {
				if _, port, err := net.SplitHostPort(e.Address); err == nil {
					if n, err := strconv.Atoi(port); err == nil {
						out = append(out, int32(n))
					}
				}
			}
		}
	}
	if len(out) == 0 {
		if p.TargetPort.IntValue() > 0 {
			return []int32{int32(p.TargetPort.IntValue())}
		}
		return []int32{p.Port}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// portsAllowed reports whether every port in reached is in allowed.
func portsAllowed(reached, allowed []int32) bool {
	for _, p := range reached {
		if !slices.Contains(allowed, p) {
			return false
		}
	}
	return true
}

// targetsFor returns the active TrafficTargets whose destination is id and
// whose destination.port, if any, covers every reached port.
func (a *acl) targetsFor(id table.Identity, reached []int32) []*topology.TrafficTarget {
	var out []*topology.TrafficTarget
	for _, tt := range a.targets[id] {
		if tt.Port != 0 && !portsAllowed(reached, []int32{tt.Port}) {
			continue
		}
		out = append(out, tt)
	}
	return out
}

// httpMatches returns the matches tt's HTTPRouteGroup rules allow, in rule
// order, then the group's match order.
func (a *acl) httpMatches(tt *topology.TrafficTarget) []table.HTTPMatch {
	var out []table.HTTPMatch
	for _, r := range tt.Rules {
		if r.Kind != topology.KindHTTPRouteGroup {
			continue
		}
		g := a.topo.HTTPRouteGroup(tt.Namespace, r.Name)
		if g == nil {
			continue
		}
		for _, m := range g.Matches {
			if len(r.Matches) == 0 || slices.Contains(r.Matches, m.Name) {
				out = append(out, m.Match)
			}
		}
	}
	return out
}

// streamAllowed reports whether one of tt's TCPRoute/UDPRoute rules (kind
// matching the route) selects every reached port.
func (a *acl) streamAllowed(tt *topology.TrafficTarget, kind shadow.Kind, reached []int32) bool {
	for _, r := range tt.Rules {
		var route *topology.StreamRoute
		switch {
		case kind == shadow.KindTCP && r.Kind == topology.KindTCPRoute:
			route = a.topo.TCPRoute(tt.Namespace, r.Name)
		case kind == shadow.KindUDP && r.Kind == topology.KindUDPRoute:
			route = a.topo.UDPRoute(tt.Namespace, r.Name)
		}
		if route != nil && (route.AllPorts || portsAllowed(reached, route.Ports)) {
			return true
		}
	}
	return false
}

func compareIdentity(a, b table.Identity) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.ServiceAccount, b.ServiceAccount))
}

func sameMatch(a, b table.HTTPMatch) bool { return reflect.DeepEqual(a, b) }

// secureHTTP filters r's backends to its destination identities and sets
// r.Allow. own is the root's own backend, split the split's (nil if none).
func (a *acl) secureHTTP(r *table.HTTPRoute, p *topology.ServicePort, own, split []table.Backend) {
	ids := a.destinations(own, split)
	r.Backends = a.filter(r.Backends, ids)
	lists := [][]table.Backend{r.Backends}
	for i := range r.Matches {
		r.Matches[i].Backends = a.filter(r.Matches[i].Backends, ids)
		lists = append(lists, r.Matches[i].Backends)
	}
	reached := podPorts(p, lists...)
	if len(ids) == 0 {
		return
	}
	if len(ids) == 1 {
		for _, tt := range a.targetsFor(ids[0], reached) {
			if m := a.httpMatches(tt); len(m) > 0 {
				r.Allow = append(r.Allow, table.HTTPAllow{Sources: tt.Sources, Matches: m})
			}
		}
		return
	}
	// Several identities: keep (source, match) pairs every identity allows.
	allowedBy := func(id table.Identity, s table.Identity, m table.HTTPMatch) bool {
		for _, tt := range a.targetsFor(id, reached) {
			if slices.Contains(tt.Sources, s) && slices.ContainsFunc(a.httpMatches(tt), func(x table.HTTPMatch) bool { return sameMatch(x, m) }) {
				return true
			}
		}
		return false
	}
	perSource := map[table.Identity][]table.HTTPMatch{}
	for _, tt := range a.targetsFor(ids[0], reached) {
		for _, m := range a.httpMatches(tt) {
			for _, s := range tt.Sources {
				if slices.ContainsFunc(perSource[s], func(x table.HTTPMatch) bool { return sameMatch(x, m) }) {
					continue
				}
				all := true
				for _, id := range ids[1:] {
					all = all && allowedBy(id, s, m)
				}
				if all {
					perSource[s] = append(perSource[s], m)
				}
			}
		}
	}
	for _, s := range sortedKeys(perSource) {
		r.Allow = append(r.Allow, table.HTTPAllow{Sources: []table.Identity{s}, Matches: perSource[s]})
	}
}

// secureStream is secureHTTP for a TCP or UDP route.
func (a *acl) secureStream(r *table.StreamRoute, p *topology.ServicePort, own, split []table.Backend) {
	ids := a.destinations(own, split)
	r.Backends = a.filter(r.Backends, ids)
	reached := podPorts(p, r.Backends)
	allowed := map[table.Identity]int{} // source -> number of identities allowing it
	for _, id := range ids {
		seen := map[table.Identity]bool{}
		for _, tt := range a.targetsFor(id, reached) {
			if !a.streamAllowed(tt, p.Protocol, reached) {
				continue
			}
			for _, s := range tt.Sources {
				if !seen[s] {
					seen[s] = true
					allowed[s]++
				}
			}
		}
	}
	var sources []table.Identity
	for _, s := range sortedKeys(allowed) {
		if allowed[s] == len(ids) {
			sources = append(sources, s)
		}
	}
	if len(sources) > 0 {
		r.Allow = []table.StreamAllow{{Sources: sources}}
	}
}

func sortedKeys[V any](m map[table.Identity]V) []table.Identity {
	out := make([]table.Identity, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, compareIdentity)
	return out
}
