// Package edges names the two ends of every request, connection and datagram
// the node proxy carries, for its edge metrics (issue 9, docs/observability.md):
// the source workload, found from the client's address, and the destination
// service with the backend a split chose.
//
// The proxy is node-local, so a connection's source address is the client
// pod's own IP. The per-table IP index is pkg/proxy/identity's (the ACL's);
// this package maps each indexed pod to its label values, interned per
// distinct (namespace, workload, service account), so that the data planes
// can cache their label children per source and never hash label strings on
// the hot path.
//
// Label values are bounded by the table, never by traffic: a source is one
// of the table's workloads or the fixed Unknown; a destination is one of its
// services and backends. No pod IP, port or path ever becomes a label value.
package edges

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/nodemesh/nodemesh/pkg/proxy/identity"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// Label names shared by every edge metric. The destination is "namespace"
// and "service", as on the proxy's other metrics.
const (
	LabelSourceNamespace      = "source_namespace"
	LabelSourceWorkload       = "source_workload"
	LabelSourceServiceAccount = "source_service_account"
	LabelNamespace            = "namespace"
	LabelService              = "service"
	LabelBackend              = "backend"
)

// SourceLabels are the source label names, in the order Source.Values
// returns them.
var SourceLabels = []string{LabelSourceNamespace, LabelSourceWorkload, LabelSourceServiceAccount}

// UnknownValue is every source label of a client that is no pod of the
// table (a node, a hostNetwork pod, a pod deleted since), and the backend
// label of a request that reached no backend.
const UnknownValue = "unknown"

// NoBackend is the backend label of a request or connection that never got
// to a backend: refused, rate limited, breaker open, no ready endpoint.
const NoBackend = "none"

// Source is the identity of a client as label values. Sources are interned
// per table: two clients of one workload share one *Source, so data planes
// may key caches by pointer.
type Source struct {
	Namespace      string
	Workload       string
	ServiceAccount string
}

// Unknown is the Source of every client the table does not know.
var Unknown = &Source{Namespace: UnknownValue, Workload: UnknownValue, ServiceAccount: UnknownValue}

// Values returns the source label values in SourceLabels order.
func (s *Source) Values() [3]string { return [3]string{s.Namespace, s.Workload, s.ServiceAccount} }

// SourceOf returns the label values of pod: its workload is the table's
// Workload ("Deployment/web"), or "Pod/<name>" when the producer left it
// empty (a hand-written table), as the topology builder does for pods
// without an owner.
func SourceOf(pod *table.Pod) Source {
	w := pod.Workload
	if w == "" {
		w = "Pod/" + pod.Name
	}
	sa := pod.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	return Source{Namespace: pod.Namespace, Workload: w, ServiceAccount: sa}
}

// Sources resolves client addresses to Sources for one table. It is
// immutable once built and safe for concurrent use.
type Sources struct {
	seq   uint64 // build order, see Cache
	table *table.Table
	ids   *identity.Index
	bySrc map[*identity.Source]*Source
	// set holds every distinct Source of the table, for Gone.
	set map[Source]*Source
}

// Build indexes the pods of t.
func Build(t *table.Table) *Sources {
	s := &Sources{seq: buildSeq.Add(1), table: t, ids: identity.Build(t.Pods), set: map[Source]*Source{}}
	s.bySrc = make(map[*identity.Source]*Source, s.ids.Len())
	for i := range t.Pods {
		ip, err := netip.ParseAddr(t.Pods[i].IP)
		if err != nil {
			continue
		}
		src := s.ids.Lookup(ip)
		if src == nil {
			continue // ambiguous IP: no identity, as for the ACL
		}
		v := SourceOf(src.Pod)
		p := s.set[v]
		if p == nil {
			p = &v
			s.set[v] = p
		}
		s.bySrc[src] = p
	}
	return s
}

// Table returns the table s was built from.
func (s *Sources) Table() *table.Table { return s.table }

// Lookup returns the Source behind addr, Unknown when the table has none.
// It does not allocate. A nil Sources knows nobody.
func (s *Sources) Lookup(addr netip.Addr) *Source {
	if s == nil {
		return Unknown
	}
	if src := s.ids.Lookup(addr); src != nil {
		if p := s.bySrc[src]; p != nil {
			return p
		}
	}
	return Unknown
}

// LookupRemote is Lookup for an "ip:port" remote address, as
// http.Request.RemoteAddr holds it.
func (s *Sources) LookupRemote(remote string) *Source {
	addr, ok := remoteIP(remote)
	if !ok {
		return Unknown
	}
	return s.Lookup(addr)
}

// remoteIP returns the IP of an "ip:port" address. The common IPv4 case is
// parsed by hand, without the port: netip.ParseAddrPort was most of the
// per-request cost of edge metrics (docs/observability.md).
func remoteIP(remote string) (netip.Addr, bool) {
	var b [4]byte
	n, v, digits := 0, 0, 0
	for i := 0; i < len(remote); i++ {
		c := remote[i]
		switch {
		case c >= '0' && c <= '9':
			v = v*10 + int(c-'0')
			digits++
			if v > 255 || digits > 3 {
				return netip.Addr{}, false
			}
		case (c == '.' || c == ':') && digits > 0 && n < 4:
			b[n] = byte(v)
			n, v, digits = n+1, 0, 0
			if c == ':' {
				if n != 4 {
					return netip.Addr{}, false
				}
				return netip.AddrFrom4(b), true
			}
		default:
			// IPv6 ("[fd00::1]:80"), or not an address: the general parser.
			ap, err := netip.ParseAddrPort(remote)
			if err != nil {
				return netip.Addr{}, false
			}
			return ap.Addr(), true
		}
	}
	return netip.Addr{}, false
}

// Len is the number of distinct Sources of the table (Unknown aside).
func (s *Sources) Len() int {
	if s == nil {
		return 0
	}
	return len(s.set)
}

// Gone returns the Sources of old that next no longer has, so their series
// can be deleted: a workload that left the cluster must not keep series
// forever. Either may be nil.
func Gone(old, next *Sources) []Source {
	if old == nil {
		return nil
	}
	var out []Source
	for v := range old.set {
		if next == nil || next.set[v] == nil {
			out = append(out, v)
		}
	}
	return out
}

// Resolver builds the Sources of each table once for the three data planes:
// the first plane to apply a table builds them, the others get the same.
// The zero value is ready to use; a nil Resolver turns edge metrics off.
type Resolver struct {
	mu        sync.Mutex
	cur, prev atomic.Pointer[Sources]
}

// For returns the Sources of t, building them on first use. It keeps the
// last two tables' (a table being applied and the one serving).
func (r *Resolver) For(t *table.Table) *Sources {
	if s := r.cur.Load(); s != nil && s.table == t {
		return s
	}
	if s := r.prev.Load(); s != nil && s.table == t {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.cur.Load(); s != nil && s.table == t {
		return s
	}
	s := Build(t)
	r.prev.Store(r.cur.Load())
	r.cur.Store(s)
	return s
}
