package udpproxy

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestRepliesComeFromTheAddressAsked: on a host with several addresses, a
// proxy listening on all of them answers each client from the address the
// client sent to. A connected client socket (what most DNS and game
// clients use, and what conntrack's reverse NAT needs) drops a reply from
// any other address. On loopback the kernel would pick 127.0.0.1 as the
// source of a reply to 127.0.0.2; the client here talks to 127.0.0.3.
func TestRepliesComeFromTheAddressAsked(t *testing.T) {
	for _, tc := range []struct{ listen, from, to string }{
		{"", "127.0.0.2", "127.0.0.3"},
		{"0.0.0.0", "127.0.0.2", "127.0.0.3"},
		{"", "::1", "::1"}, // IPv6 datagrams take the IPV6_PKTINFO path
		{"127.0.0.3", "127.0.0.2", "127.0.0.3"},
	} {
		t.Run(fmt.Sprintf("listen %q, %s to %s", tc.listen, tc.from, tc.to), func(t *testing.T) {
			backend := echoServer(t, "svc")
			m := New(Options{ListenAddress: tc.listen, Registerer: prometheus.NewRegistry()})
			t.Cleanup(func() { m.Close() })
			port := freePort(t)
			if err := m.Apply(tableOf(routeOf("svc", port, backend))); err != nil {
				t.Fatal(err)
			}
			c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(tc.from)}, &net.UDPAddr{IP: net.ParseIP(tc.to), Port: int(port)})
			if err != nil {
				if tc.from == "::1" {
					t.Skipf("no IPv6 loopback: %v", err)
				}
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			cl := &client{t: t, c: c}
			for i := range 3 {
				msg := fmt.Sprint("q", i)
				if got := cl.ask(msg, 2*time.Second); got != "svc:"+msg {
					t.Fatalf("reply to %s: %q, want %q from %s", msg, got, "svc:"+msg, tc.to)
				}
			}
		})
	}
}
