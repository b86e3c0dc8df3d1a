package tcpproxy

import (
	"net"
	"net/netip"
)

// revoke closes the open connections of this port whose source r no longer
// admits. Access is decided at accept, but a new table can take it away:
// a TrafficTarget removed, or the client pod deleted. Its connections must
// not outlive that, as an access list that only stops new connections
// would leave the old ones open for as long as the idle timeout (an hour).
func (l *listener) revoke(r *route) {
	admit := l.mgr.opts.Admit
	if admit == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for c, src := range l.conns {
		if !admit(r.table, r.stream, src) {
			c.Close()
		}
	}
}

// sourceOf is the client's IP address, IPv4-mapped addresses unmapped; the
// zero Addr when the connection has no TCP peer address.
func sourceOf(c *net.TCPConn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}
