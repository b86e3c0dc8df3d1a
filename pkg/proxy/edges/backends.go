package edges

import (
	"net/netip"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// Backends names the backend service of each endpoint of a TCP or UDP
// route, so a connection or session is counted under the backend its
// endpoint belongs to.
type Backends map[netip.AddrPort]string

// StreamBackends maps the endpoints of sr to their backend services. An
// endpoint listed under two backends (a pod selected by both) counts for
// the first.
func StreamBackends(sr *table.StreamRoute) Backends {
	b := Backends{}
	for _, be := range sr.Backends {
		for _, e := range be.Endpoints {
			if ap, err := netip.ParseAddrPort(e.Address); err == nil {
				k := unmapped(ap)
				if _, dup := b[k]; !dup {
					b[k] = be.Service.Name
				}
			}
		}
	}
	return b
}

// Of returns the backend service of endpoint, or UnknownValue.
func (b Backends) Of(endpoint netip.AddrPort) string {
	if name, ok := b[unmapped(endpoint)]; ok {
		return name
	}
	return UnknownValue
}

// unmapped is ap with an IPv4-mapped IPv6 address turned into IPv4.
func unmapped(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
