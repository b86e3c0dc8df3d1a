package udpproxy

import "net/netip"

// admitted asks Options.Admit whether client may still use r. The answer
// given when its session opened does not last: a new table can take access
// away (a TrafficTarget removed, the client pod deleted and its IP reused
// by a pod of another service account), and a session kept alive by a
// steady flow of datagrams must not outlive that. swap closes the sessions
// of clients no longer admitted, so their next datagram is checked again,
// and dropped and counted.
func (l *listener) admitted(r *route, client netip.AddrPort) bool {
	admit := l.mgr.opts.Admit
	return admit == nil || admit(r.table, r.stream, client.Addr().Unmap())
}
