// Package routing is the second pure builder: it turns a Topology into the
// routing table every node proxy applies. No clients, no clock, no logging;
// the same Topology always gives a byte-identical table.
//
// Splits resolve straight to the backends' ready endpoints, so a split costs
// no second hop through the mesh and no forwarded header is ever trusted.
package routing

import (
	"cmp"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/nodemesh/nodemesh/pkg/shadow"
	"github.com/nodemesh/nodemesh/pkg/table"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

// Build makes the routing table of topo. Version is left 0: the
// distribution server assigns it when it publishes.
func Build(topo *topology.Topology) *table.Table {
	return new(Builder).Build(topo)
}

// Builder is Build with a memory: when a topology shares its pod list with
// the previous one (topology.Builder reuses it while the pods are
// unchanged), the table's pod list is reused too, and a table.Encoder can
// then reuse its encoding. The output is always Build's; reused lists are
// shared between tables, which must not be modified. Safe for concurrent
// use.
type Builder struct {
	mu   sync.Mutex
	from []*topology.Pod
	pods table.PodList
	// eps are the ready endpoint lists of the previous build, by the
	// topology endpoint list they came from (topology.Builder shares an
	// unchanged service's lists between builds). It is one map, kept and
	// pruned: a new map per build was a tenth of a rebuild's allocations.
	eps    map[epKey]epMemo
	builds uint64
}

type epMemo struct {
	from  []topology.Endpoint
	out   []table.Endpoint
	build uint64 // the last build that used it
}

// Build builds topo like the package's Build, reusing what it can.
func (bu *Builder) Build(topo *topology.Topology) *table.Table {
	bu.mu.Lock()
	defer bu.mu.Unlock()
	if bu.eps == nil {
		bu.eps = map[epKey]epMemo{}
	}
	bu.builds++
	t := build(topo, bu.eps, bu.builds)
	if !sameSlice(bu.from, topo.Pods) {
		bu.from, bu.pods = topo.Pods, podList(topo.Pods)
	}
	t.Pods = bu.pods
	return t
}

// sameSlice reports whether a and b are the same slice (not merely equal).
func sameSlice[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// podList gives the table's pod identities, sorted by IP.
func podList(pods []*topology.Pod) table.PodList {
	out := make(table.PodList, len(pods))
	for i, p := range pods {
		out[i] = table.Pod{IP: p.IP, Namespace: p.Namespace, Name: p.Name, ServiceAccount: p.ServiceAccount, Node: p.Node, Workload: p.Workload}
	}
	slices.SortFunc(out, func(a, b table.Pod) int { return cmp.Compare(a.IP, b.IP) })
	return out
}

// build makes every part of the table but its pods, reusing the endpoint
// lists of eps whose source is the same slice; afterwards eps holds those
// this build (number n) used.
func build(topo *topology.Topology, eps map[epKey]epMemo, n uint64) *table.Table {
	t := &table.Table{Schema: table.SchemaVersion, ACL: topo.Options.ACL}
	b := &builder{topo: topo, eps: eps, build: n}
	if topo.Options.ACL {
		b.acl = newACL(topo)
	}
	// The HTTP list is made at its size: appending a thousand routes one by
	// one to a growing list copied them about twice over, a fifth of a
	// rebuild's allocations at 1,000 services.
	nHTTP := 0
	for _, svc := range topo.Services {
		for _, p := range svc.Ports {
			if p.Protocol == shadow.KindHTTP {
				nHTTP++
			}
		}
	}
	if nHTTP > 0 {
		t.HTTP = make([]table.HTTPRoute, 0, nHTTP)
	}
	for _, svc := range topo.Services {
		split := b.activeSplit(svc)
		httpPorts := 0
		for _, p := range svc.Ports {
			if p.Protocol == shadow.KindHTTP {
				httpPorts++
			}
		}
		for _, p := range svc.Ports {
			switch p.Protocol {
			case shadow.KindHTTP:
				t.HTTP = append(t.HTTP, b.httpRoute(svc, p, split, p.Port == 80 || httpPorts == 1))
			case shadow.KindTCP:
				if p.ProxyPort != 0 {
					t.TCP = append(t.TCP, b.streamRoute(svc, p, split))
				}
			case shadow.KindUDP:
				if p.ProxyPort != 0 {
					t.UDP = append(t.UDP, b.streamRoute(svc, p, split))
				}
			}
		}
	}
	fixDefaultPorts(t.HTTP)
	t.Nodes = topo.Nodes
	sortTable(t)
	maps.DeleteFunc(eps, func(_ epKey, m epMemo) bool { return m.build != n })
	return t
}

type builder struct {
	topo *topology.Topology
	// eps caches the ready endpoints of (service, port, protocol): a
	// backend shared by many routes is converted once, and an unchanged one
	// is kept from the previous build. build is this build's number.
	eps   map[epKey]epMemo
	build uint64
	// acl is set when access control is on.
	acl *acl
}

type epKey struct {
	ns, name string
	port     int32
	kind     shadow.Kind
}

func (b *builder) activeSplit(svc *topology.Service) *topology.Split {
	if svc.Split == "" {
		return nil
	}
	if sp := b.topo.Split(svc.Namespace, svc.Split); sp != nil && sp.Active {
		return sp
	}
	return nil
}

func (b *builder) httpRoute(svc *topology.Service, p *topology.ServicePort, split *topology.Split, defaultPort bool) table.HTTPRoute {
	hosts := append([]string{svc.MeshName}, svc.Aliases...)
	hosts = append(hosts, svc.ShadowClusterIPs...)
	for i, h := range hosts {
		hosts[i] = strings.ToLower(h)
	}
	slices.Sort(hosts)
	r := table.HTTPRoute{
		Service:     svc.Ref(),
		Port:        p.Port,
		Hosts:       slices.Compact(hosts),
		DefaultPort: defaultPort,
		Scheme:      cmp.Or(svc.Scheme, table.SchemeHTTP),
		Middleware:  svc.Middleware,
	}
	own := []table.Backend{b.backend(svc, p, 1)}
	var backends []table.Backend
	if split != nil {
		backends = b.splitBackends(split, p)
	}
	switch {
	case split == nil:
		r.Backends = own
	case len(split.Matches) == 0:
		r.Backends = backends
	default:
		// A/B: requests matching the split's route groups go to the
		// backends, every other request to the root service itself.
		r.Backends = own
		for _, m := range split.Matches {
			if m.Kind != topology.KindHTTPRouteGroup {
				continue
			}
			g := b.topo.HTTPRouteGroup(split.Namespace, m.Name)
			if g == nil {
				continue
			}
			for _, gm := range g.Matches {
				r.Matches = append(r.Matches, table.HTTPMatchRoute{Name: g.Name + "/" + gm.Name, Match: gm.Match, Backends: backends})
			}
		}
	}
	if b.acl != nil {
		b.acl.secureHTTP(&r, p, own, backends)
	}
	return r
}

// streamRoute serves a TCP or UDP port. A split applies to it when the split
// has no matches, or when one of its TCPRoute/UDPRoute matches selects the
// port; HTTPRouteGroup matches never select a stream port.
func (b *builder) streamRoute(svc *topology.Service, p *topology.ServicePort, split *topology.Split) table.StreamRoute {
	r := table.StreamRoute{
		Service: svc.Ref(), Port: p.Port, ProxyPort: p.ProxyPort,
		IdleTimeout: svc.Stream.IdleTimeout, Locality: svc.Stream.Locality,
	}
	if p.Protocol == shadow.KindTCP {
		r.MaxConnections = svc.Stream.MaxConnections // no connections to count in UDP
	}
	own := []table.Backend{b.backend(svc, p, 1)}
	var backends []table.Backend
	if split != nil && b.splitSelectsStream(split, p) {
		backends = b.splitBackends(split, p)
		r.Backends = backends
	} else {
		r.Backends = own
	}
	if b.acl != nil {
		b.acl.secureStream(&r, p, own, backends)
	}
	return r
}

func (b *builder) splitSelectsStream(split *topology.Split, p *topology.ServicePort) bool {
	if len(split.Matches) == 0 {
		return true
	}
	for _, m := range split.Matches {
		var route *topology.StreamRoute
		switch {
		case m.Kind == topology.KindTCPRoute && p.Protocol == shadow.KindTCP:
			route = b.topo.TCPRoute(split.Namespace, m.Name)
		case m.Kind == topology.KindUDPRoute && p.Protocol == shadow.KindUDP:
			route = b.topo.UDPRoute(split.Namespace, m.Name)
		}
		if route != nil && route.Selects(p.Port) {
			return true
		}
	}
	return false
}

// splitBackends gives one Backend per flattened leaf, serving the leaf's port
// with the root port's number and protocol (the topology checked it exists).
func (b *builder) splitBackends(split *topology.Split, root *topology.ServicePort) []table.Backend {
	out := make([]table.Backend, 0, len(split.Leaves))
	for _, l := range split.Leaves {
		svc := b.topo.Service(split.Namespace, l.Service)
		if svc == nil {
			continue
		}
		if p := svc.Port(root.Port, root.Protocol); p != nil {
			out = append(out, b.backend(svc, p, l.Weight))
		}
	}
	return out
}

// backend returns svc's ready endpoints of port p as one weighted backend.
func (b *builder) backend(svc *topology.Service, p *topology.ServicePort, weight int32) table.Backend {
	k := epKey{svc.Namespace, svc.Name, p.Port, p.Protocol}
	m, ok := b.eps[k]
	if ok && sameSlice(m.from, p.Endpoints) {
		if m.build != b.build {
			m.build = b.build
			b.eps[k] = m
		}
		return table.Backend{Service: svc.Ref(), Weight: weight, Endpoints: m.out}
	}
	eps := make([]table.Endpoint, 0, len(p.Endpoints))
	for _, e := range p.Endpoints {
		if e.Ready {
			eps = append(eps, table.Endpoint{Address: net.JoinHostPort(e.IP, strconv.Itoa(int(e.Port))), Node: e.Node, Zone: e.Zone})
		}
	}
	slices.SortFunc(eps, func(a, b table.Endpoint) int { return cmp.Compare(a.Address, b.Address) })
	eps = slices.CompactFunc(eps, func(a, b table.Endpoint) bool { return a.Address == b.Address })
	b.eps[k] = epMemo{from: p.Endpoints, out: eps, build: b.build}
	return table.Backend{Service: svc.Ref(), Weight: weight, Endpoints: eps}
}

// fixDefaultPorts keeps DefaultPort on at most one route per host name: when
// two routes claim a host (a ClusterIP shared oddly, or a host listed twice),
// the one that sorts first by service then port keeps it.
func fixDefaultPorts(routes []table.HTTPRoute) {
	slices.SortFunc(routes, compareHTTP)
	claimed := make(map[string]bool, len(routes))
	for i := range routes {
		r := &routes[i]
		if !r.DefaultPort {
			continue
		}
		for _, h := range r.Hosts {
			if claimed[h] {
				r.DefaultPort = false
			}
		}
		if r.DefaultPort {
			for _, h := range r.Hosts {
				claimed[h] = true
			}
		}
	}
}

func compareHTTP(a, b table.HTTPRoute) int {
	return cmp.Or(cmp.Compare(a.Service.Namespace, b.Service.Namespace), cmp.Compare(a.Service.Name, b.Service.Name), cmp.Compare(a.Port, b.Port))
}

func sortTable(t *table.Table) {
	slices.SortFunc(t.HTTP, compareHTTP)
	byProxyPort := func(a, b table.StreamRoute) int { return cmp.Compare(a.ProxyPort, b.ProxyPort) }
	slices.SortFunc(t.TCP, byProxyPort)
	slices.SortFunc(t.UDP, byProxyPort)
}
