// Package status is the model behind `nodemesh status`: for each mesh
// service, its mesh names, traffic type, shadow service, endpoints per
// node, the TrafficSplit with intended and observed weights, and the access
// rules that apply. It is built from what the controller serves (topology
// and routing table) and, for observed weights, the proxies' edge metrics.
// Build is pure; rendering is in render.go.
package status

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/nodemesh/nodemesh/pkg/edgestats"
	"github.com/nodemesh/nodemesh/pkg/table"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

// Service is the status of one mesh service.
type Service struct {
	Namespace   string   `json:"namespace"`
	Name        string   `json:"name"`
	MeshNames   []string `json:"meshNames"`
	TrafficType string   `json:"trafficType"`
	// Shadow is "<mesh namespace>/<shadow name>"; ShadowClusterIPs are its
	// addresses once the apiserver gave them.
	Shadow           string          `json:"shadow"`
	ShadowClusterIPs []string        `json:"shadowClusterIPs"`
	Ports            []Port          `json:"ports"`
	Endpoints        []NodeEndpoints `json:"endpoints"`
	Split            *Split          `json:"split,omitempty"`
	Access           Access          `json:"access"`
	Errors           []string        `json:"errors,omitempty"`
}

// Port is one meshed port.
type Port struct {
	Port     int32  `json:"port"`
	Protocol string `json:"protocol"`
	// ProxyPort is the allocated TCP/UDP proxy port (0 for HTTP, and for a
	// port left unmeshed by an exhausted range).
	ProxyPort int32 `json:"proxyPort,omitempty"`
}

// NodeEndpoints are a service's endpoints on one node.
type NodeEndpoints struct {
	Node      string   `json:"node"`
	Ready     int      `json:"ready"`
	NotReady  int      `json:"notReady"`
	Addresses []string `json:"addresses"`
}

// Split is the TrafficSplit whose root is the service.
type Split struct {
	Name     string         `json:"name"`
	Backends []SplitBackend `json:"backends"`
	// Observed is false when no proxy serves edge metrics or no request
	// reached a backend: every Observed weight is then "n/a".
	Observed bool `json:"observed"`
}

// SplitBackend is one backend with its intended and observed share.
type SplitBackend struct {
	Service string `json:"service"`
	Weight  int32  `json:"weight"`
	// Intended is the weight's share of the total, in percent.
	Intended float64 `json:"intended"`
	// Observed is the share of requests the backend answered, in percent,
	// when Split.Observed; Requests is their count.
	Observed float64 `json:"observed"`
	Requests float64 `json:"requests"`
}

// Access is the access control that applies to the service.
type Access struct {
	// Enforced is the table's ACL switch (the controller's --acl).
	Enforced bool `json:"enforced"`
	// Rules are who may call which port and requests, one line each.
	Rules []string `json:"rules"`
}

// Input is what Build reads.
type Input struct {
	Topology *topology.Topology
	Table    *table.Table
	// Stats are edge figures from the proxies; nil when none could be read.
	Stats []edgestats.Stat
	// EdgeSeries is true when Stats carry sources and backends.
	EdgeSeries bool
	// Namespace and Name filter the services; "" means all.
	Namespace, Name string
}

// Build returns the status of every service the filters select, sorted by
// namespace and name.
func Build(in Input) []Service {
	var out []Service
	for _, svc := range in.Topology.Services {
		if (in.Namespace != "" && svc.Namespace != in.Namespace) || (in.Name != "" && svc.Name != in.Name) {
			continue
		}
		s := Service{
			Namespace:        svc.Namespace,
			Name:             svc.Name,
			MeshNames:        append([]string{svc.MeshName}, svc.Aliases...),
			TrafficType:      string(svc.TrafficType),
			Shadow:           in.Topology.Options.MeshNamespace + "/" + svc.ShadowName,
			ShadowClusterIPs: append([]string{}, svc.ShadowClusterIPs...),
			Endpoints:        endpointsByNode(svc),
			Split:            splitOf(in, svc),
			Access:           accessOf(in.Table, svc),
		}
		for _, p := range svc.Ports {
			s.Ports = append(s.Ports, Port{Port: p.Port, Protocol: string(p.Protocol), ProxyPort: p.ProxyPort})
		}
		for _, e := range in.Topology.Errors {
			if e.Kind == topology.KindService && e.Namespace == svc.Namespace && e.Name == svc.Name {
				s.Errors = append(s.Errors, e.Message)
			}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// endpointsByNode groups the endpoints of every port by node; an endpoint
// serving several ports counts once per address.
func endpointsByNode(svc *topology.Service) []NodeEndpoints {
	byNode := map[string]*NodeEndpoints{}
	seen := map[string]bool{}
	for _, p := range svc.Ports {
		for _, e := range p.Endpoints {
			addr := fmt.Sprintf("%s:%d", e.IP, e.Port)
			if strings.Contains(e.IP, ":") {
				addr = fmt.Sprintf("[%s]:%d", e.IP, e.Port)
			}
			if seen[addr] {
				continue
			}
			seen[addr] = true
			node := e.Node
			if node == "" {
				node = "(unknown node)"
			}
			n := byNode[node]
			if n == nil {
				n = &NodeEndpoints{Node: node}
				byNode[node] = n
			}
			if e.Ready {
				n.Ready++
			} else {
				n.NotReady++
			}
			n.Addresses = append(n.Addresses, addr)
		}
	}
	out := make([]NodeEndpoints, 0, len(byNode))
	for _, n := range byNode {
		slices.Sort(n.Addresses)
		out = append(out, *n)
	}
	slices.SortFunc(out, func(a, b NodeEndpoints) int { return cmp.Compare(a.Node, b.Node) })
	return out
}

// splitOf describes the split whose root is svc. An active split shows
// its leaves (nested splits flattened), which are the backends the proxies
// choose between and name in their metrics.
func splitOf(in Input, svc *topology.Service) *Split {
	if svc.Split == "" {
		return nil
	}
	var sp *topology.Split
	for _, s := range in.Topology.Splits {
		if s.Namespace == svc.Namespace && s.Name == svc.Split {
			sp = s
		}
	}
	if sp == nil {
		return nil
	}
	backends := sp.Backends
	if sp.Active && len(sp.Leaves) > 0 {
		backends = sp.Leaves
	}
	out := &Split{Name: sp.Name}
	var total int64
	for _, b := range backends {
		total += int64(b.Weight)
	}
	observed := edgestats.ByDestination(in.Stats, svc.Namespace, svc.Name)
	var requests float64
	for _, b := range backends {
		requests += observed[b.Service]
	}
	out.Observed = in.EdgeSeries && requests > 0
	for _, b := range backends {
		sb := SplitBackend{Service: b.Service, Weight: b.Weight}
		if total > 0 {
			sb.Intended = 100 * float64(b.Weight) / float64(total)
		}
		if out.Observed {
			sb.Requests = observed[b.Service]
			sb.Observed = 100 * sb.Requests / requests
		}
		out.Backends = append(out.Backends, sb)
	}
	return out
}
