package harness

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
)

// DialContext opens a connection from the pod, as a process in the pod
// would: the socket is made inside the pod's node's network namespace and
// bound to the pod IP, so the peer sees the pod IP as the source, and a
// ClusterIP is translated by that node's kube-proxy. network is tcp, tcp4,
// udp or udp4; address must be an IP:port (resolve names with Resolver
// first: Go's resolver would query from the harness namespace).
func (p *Pod) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("pod %s: dial %s: want an IP:port (resolve names with Pod.Resolver): %w", p.Key(), address, err)
	}
	d := net.Dialer{}
	switch network {
	case "tcp", "tcp4":
		d.LocalAddr = &net.TCPAddr{IP: p.IP.AsSlice()}
	case "udp", "udp4":
		d.LocalAddr = &net.UDPAddr{IP: p.IP.AsSlice()}
	default:
		return nil, fmt.Errorf("pod %s: dial %s %s: network %q is not supported", p.Key(), network, address, network)
	}
	var conn net.Conn
	err = p.node.Do(func() (err error) {
		conn, err = d.DialContext(ctx, network, ap.String())
		return err
	})
	return conn, err
}

// Resolver is a DNS resolver for code running "in" the pod: Go's own
// resolver, sending every query from the pod (DialContext) to server, e.g.
// the kube-dns Service's ClusterIP and port 53. It checks answers as a
// client library would: a reply must answer the name asked.
func (p *Pod) Resolver(server netip.AddrPort) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return p.DialContext(ctx, network, server.String())
		},
	}
}

// HTTPTransport is an HTTP transport whose connections come from the pod
// (DialContext). Host names are looked up with resolver first; nil allows IP
// addresses only. Proxy settings from the environment are ignored.
func (p *Pod) HTTPTransport(resolver *net.Resolver) *http.Transport {
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(address)
			if err != nil {
				return nil, err
			}
			if _, err := netip.ParseAddr(host); err != nil && resolver != nil {
				ips, err := resolver.LookupNetIP(ctx, "ip4", host)
				if err != nil {
					return nil, err
				}
				host = ips[0].String() // LookupNetIP fails rather than return none
			}
			if _, err := strconv.Atoi(port); err != nil {
				return nil, fmt.Errorf("port %q: %w", port, err)
			}
			return p.DialContext(ctx, network, net.JoinHostPort(host, port))
		},
	}
}
