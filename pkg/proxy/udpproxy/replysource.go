package udpproxy

import (
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Reply source address.
//
// A listener bound to every address (ListenAddress "" or "0.0.0.0") would
// let the kernel pick each reply's source address by route. On a host with
// several addresses (a node IP and a pod or Service address, or 127.0.0.2
// and 127.0.0.3) that can differ from the address the client sent to; a
// connected client socket then drops the reply, and conntrack cannot undo
// the DNAT of a ClusterIP. So a wildcard listener asks the kernel for each
// datagram's destination (IP_PKTINFO, IPV6_PKTINFO) and a session answers
// from the destination of its first datagram. A listener bound to one
// address needs none of this.

// oobSize holds an IP_PKTINFO and an IPV6_PKTINFO control message: a
// dual-stack socket with both options on gets both for an IPv4 datagram
// (the IPv6 one with the address v4-mapped).
var oobSize = len(ipv4.NewControlMessage(ipv4.FlagDst)) + len(ipv6.NewControlMessage(ipv6.FlagDst))

// askDestinations makes conn report each datagram's destination address, when
// conn is bound to a wildcard address. It reports whether it did.
func askDestinations(conn *net.UDPConn) (bool, error) {
	local, ok := conn.LocalAddr().(*net.UDPAddr)
	if !ok || !local.IP.IsUnspecified() {
		return false, nil
	}
	if local.IP.To4() != nil { // an AF_INET socket
		return true, ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagDst, true)
	}
	// Go's wildcard listener is a dual-stack AF_INET6 socket. IPv6 datagrams
	// carry IPV6_PKTINFO; IPv4 ones carry IP_PKTINFO when asked for, which
	// is also what the kernel takes to set an IPv4 reply's source.
	if err := ipv6.NewPacketConn(conn).SetControlMessage(ipv6.FlagDst, true); err != nil {
		return true, err
	}
	return true, ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagDst, true)
}

// replyControl returns the control message that sends a reply to client from
// the destination address oob reports, or nil when oob has none (a listener
// bound to one address, where the source is that address anyway). It runs
// once per session, not per datagram.
func replyControl(client netip.AddrPort, oob []byte) []byte {
	if len(oob) == 0 {
		return nil
	}
	if client.Addr().Unmap().Is4() {
		var cm ipv4.ControlMessage
		if cm.Parse(oob) != nil || cm.Dst == nil || cm.Dst.IsUnspecified() {
			return nil
		}
		return (&ipv4.ControlMessage{Src: cm.Dst}).Marshal()
	}
	var cm ipv6.ControlMessage
	if cm.Parse(oob) != nil || cm.Dst == nil || cm.Dst.IsUnspecified() {
		return nil
	}
	return (&ipv6.ControlMessage{Src: cm.Dst}).Marshal()
}
