package table

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// PodList is the table's pod identities. In Go it is a plain list of Pods;
// in JSON the pods that share a namespace, service account, node and
// workload are written as one group with parallel "ips" and "names" lists:
//
//	{"namespace":"shop","serviceAccount":"web","node":"node-a","workload":"Deployment/web","ips":["10.244.1.5","10.244.1.6"],"names":["web-7d9c","web-8f2a"]}
//
// A pod list is most of a table's bytes (every pod IP of the mesh), and
// grouping writes each pod as two strings instead of an object of six
// fields: about a fifth of the bytes, so less to encode, send and decode on
// every node. A group without "workload" holds pods that have no owner;
// each one's workload is then "Pod/<name>". A single pod may also be written
// as one object with "ip" and "name" instead of "ips" and "names" (handy in
// a hand-written table); the encoder always writes groups.
type PodList []Pod

// podGroup is one element of the JSON pod list.
type podGroup struct {
	Namespace      string   `json:"namespace"`
	ServiceAccount string   `json:"serviceAccount"`
	Node           string   `json:"node,omitempty"`
	Workload       string   `json:"workload,omitempty"`
	IPs            []string `json:"ips,omitempty"`
	Names          []string `json:"names,omitempty"`
	// The single-pod form.
	IP   string `json:"ip,omitempty"`
	Name string `json:"name,omitempty"`
}

// groupKey is what the pods of one group share.
type groupKey struct{ namespace, serviceAccount, node, workload string }

func (k groupKey) compare(o groupKey) int {
	return cmp.Or(strings.Compare(k.namespace, o.namespace), strings.Compare(k.serviceAccount, o.serviceAccount),
		strings.Compare(k.node, o.node), strings.Compare(k.workload, o.workload))
}

// ownWorkload is the workload a pod without an owner has.
func ownWorkload(name string) string { return "Pod/" + name }

// MarshalJSON writes the list as groups, sorted by namespace, service
// account, node and workload; each group's pods in IP order. The same pods
// in any order give the same bytes.
func (l PodList) MarshalJSON() ([]byte, error) {
	pods := []Pod(l)
	byIP := func(a, b Pod) int { return cmp.Or(strings.Compare(a.IP, b.IP), strings.Compare(a.Name, b.Name)) }
	if !slices.IsSortedFunc(pods, byIP) {
		pods = slices.Clone(pods)
		slices.SortFunc(pods, byIP)
	}
	var groups []*podGroup
	var keys []groupKey
	index := map[groupKey]int{}
	for i := range pods {
		p := &pods[i]
		w := p.Workload
		if w == ownWorkload(p.Name) {
			w = ""
		}
		k := groupKey{p.Namespace, p.ServiceAccount, p.Node, w}
		g, ok := index[k]
		if !ok {
			g = len(groups)
			index[k] = g
			groups = append(groups, &podGroup{Namespace: k.namespace, ServiceAccount: k.serviceAccount, Node: k.node, Workload: k.workload})
			keys = append(keys, k)
		}
		groups[g].IPs = append(groups[g].IPs, p.IP)
		groups[g].Names = append(groups[g].Names, p.Name)
	}
	order := make([]int, len(groups))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return keys[a].compare(keys[b]) })
	sorted := make([]*podGroup, len(groups))
	for i, g := range order {
		sorted[i] = groups[g]
	}
	if sorted == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(sorted)
}

// UnmarshalJSON reads groups (and single pods) strictly: an unknown field,
// "ips" and "names" of different lengths, or a mix of the two forms in one
// object is an error. The pods come out sorted by IP (ComparePods).
func (l *PodList) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var groups []podGroup
	if err := UnmarshalStrict(b, &groups); err != nil { // the table's strictness holds inside the list too
		return fmt.Errorf("pods: %w", err)
	}
	n := 0
	for i, g := range groups {
		single := g.IP != "" || g.Name != ""
		switch {
		case single && (g.IPs != nil || g.Names != nil):
			return fmt.Errorf("pods: entry %d has both ip/name and ips/names", i)
		case len(g.IPs) != len(g.Names):
			return fmt.Errorf("pods: entry %d has %d ips and %d names", i, len(g.IPs), len(g.Names))
		case single:
			n++
		case len(g.IPs) == 0:
			return fmt.Errorf("pods: entry %d has no ip", i)
		default:
			n += len(g.IPs)
		}
	}
	out := make([]Pod, 0, n)
	for _, g := range groups {
		add := func(ip, name string) {
			w := g.Workload
			if w == "" {
				w = ownWorkload(name)
			}
			out = append(out, Pod{IP: ip, Namespace: g.Namespace, Name: name, ServiceAccount: g.ServiceAccount, Node: g.Node, Workload: w})
		}
		if g.IP != "" || g.Name != "" {
			add(g.IP, g.Name)
			continue
		}
		for j := range g.IPs {
			add(g.IPs[j], g.Names[j])
		}
	}
	SortPods(out)
	*l = out
	return nil
}

// ComparePods orders pods by IP, then by every other field: a total order,
// so that pods decoded whole and pods rebuilt from a delta's changes come
// out in the same order even when two pods share an IP.
func ComparePods(a, b Pod) int {
	return cmp.Or(strings.Compare(a.IP, b.IP), strings.Compare(a.Name, b.Name), strings.Compare(a.Namespace, b.Namespace),
		strings.Compare(a.ServiceAccount, b.ServiceAccount), strings.Compare(a.Node, b.Node), strings.Compare(a.Workload, b.Workload))
}

// Canonical returns p as decoding its encoding gives it: a pod without a
// workload has its own, "Pod/<name>".
func (p Pod) Canonical() Pod {
	if p.Workload == "" {
		p.Workload = ownWorkload(p.Name)
	}
	return p
}

// SortPods sorts pods with ComparePods.
func SortPods(pods []Pod) { slices.SortFunc(pods, ComparePods) }
