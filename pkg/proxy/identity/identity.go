// Package identity names the client of a connection from its source IP: it
// indexes a routing table's Pods by address, so the proxy can tell which
// namespace and service account a connection comes from.
//
// The proxy is node-local, so the source address of a connection is the
// client pod's own IP; that address, never a forwarded header, is the only
// input. An Index is built per table and never modified, and is replaced
// with the table: a deleted pod's IP has no identity in the next table, and
// an IP reused by another pod has that pod's identity only.
package identity

import (
	"net/netip"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// Source is the identity behind one pod IP.
type Source struct {
	// Pod is the table entry of the pod; it belongs to the table the Index
	// was built from.
	Pod *table.Pod
	// ID is the pod's workload identity (namespace and service account),
	// kept as a value so that a lookup hands out a pointer without
	// allocating.
	ID table.Identity
}

// Index maps pod IPs to their Sources. The zero value and nil are empty
// indexes. It is immutable once built and safe for concurrent use.
type Index struct {
	byAddr map[netip.Addr]*Source
}

// Build indexes pods. A pod whose IP does not parse is left out. An IP
// claimed by two pods gets no identity at all: guessing one of them could
// hand a client the other's rights (table.Validate already rejects such a
// table; this is the same rule for tables that skipped it). IPv4-mapped
// IPv6 addresses are indexed as IPv4, as Lookup looks them up.
func Build(pods []table.Pod) *Index {
	x := &Index{byAddr: make(map[netip.Addr]*Source, len(pods))}
	sources := make([]Source, len(pods)) // one allocation for every entry
	var ambiguous map[netip.Addr]bool
	for i := range pods {
		p := &pods[i]
		ip, err := netip.ParseAddr(p.IP)
		if err != nil {
			continue
		}
		ip = ip.Unmap().WithZone("")
		if _, dup := x.byAddr[ip]; dup || ambiguous[ip] {
			if ambiguous == nil {
				ambiguous = map[netip.Addr]bool{}
			}
			ambiguous[ip] = true
			delete(x.byAddr, ip)
			continue
		}
		sources[i] = Source{Pod: p, ID: table.Identity{Namespace: p.Namespace, ServiceAccount: p.ServiceAccount}}
		x.byAddr[ip] = &sources[i]
	}
	return x
}

// Lookup returns the Source behind addr, or nil when addr is no known pod
// (a node, a hostNetwork pod, a deleted pod, an address outside the
// cluster). It does not allocate.
func (x *Index) Lookup(addr netip.Addr) *Source {
	if x == nil {
		return nil
	}
	return x.byAddr[addr.Unmap().WithZone("")]
}

// Len is the number of addresses with an identity.
func (x *Index) Len() int {
	if x == nil {
		return 0
	}
	return len(x.byAddr)
}
