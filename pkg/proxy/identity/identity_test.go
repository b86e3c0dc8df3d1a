package identity

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/table"
)

func pod(ip, ns, name, sa string) table.Pod {
	return table.Pod{IP: ip, Namespace: ns, Name: name, ServiceAccount: sa}
}

func lookup(x *Index, ip string) string {
	s := x.Lookup(netip.MustParseAddr(ip))
	if s == nil {
		return "-"
	}
	if s.ID.Namespace != s.Pod.Namespace || s.ID.ServiceAccount != s.Pod.ServiceAccount {
		return "inconsistent"
	}
	return s.Pod.Namespace + "/" + s.Pod.Name + "@" + s.ID.ServiceAccount
}

func TestLookup(t *testing.T) {
	x := Build([]table.Pod{
		pod("10.244.1.2", "shop", "client-0", "client"),
		pod("10.244.1.3", "shop", "web-0", "web"),
		pod("fd00::7", "shop", "v6", "client"),
		pod("not-an-ip", "shop", "broken", "client"),
		pod("10.244.1.9", "a", "twin-1", "x"),
		pod("10.244.1.9", "b", "twin-2", "y"),
		pod("10.244.1.9", "c", "twin-3", "z"),
	})
	for _, tt := range []struct{ ip, want string }{
		{"10.244.1.2", "shop/client-0@client"},
		{"10.244.1.3", "shop/web-0@web"},
		{"::ffff:10.244.1.2", "shop/client-0@client"}, // a dual-stack listener's view of IPv4
		{"fd00::7", "shop/v6@client"},
		{"10.244.1.4", "-"},
		{"10.244.1.9", "-"}, // claimed by three pods: nobody's
	} {
		if got := lookup(x, tt.ip); got != tt.want {
			t.Errorf("Lookup(%s) = %s, want %s", tt.ip, got, tt.want)
		}
	}
	if x.Len() != 3 {
		t.Errorf("Len = %d, want 3", x.Len())
	}
}

// TestIdentityFollowsTheTable replays pod churn: each table gets its own
// Index, and only the current one decides.
func TestIdentityFollowsTheTable(t *testing.T) {
	before := Build([]table.Pod{pod("10.244.1.2", "shop", "client-0", "client")})
	deleted := Build(nil)
	reused := Build([]table.Pod{pod("10.244.1.2", "shop", "intruder-0", "intruder")})
	for _, tt := range []struct {
		name string
		x    *Index
		want string
	}{
		{"running pod", before, "shop/client-0@client"},
		{"pod deleted: no identity in the next table", deleted, "-"},
		{"IP reused by another service account: only the new pod's", reused, "shop/intruder-0@intruder"},
	} {
		if got := lookup(tt.x, "10.244.1.2"); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
	if got := lookup(before, "10.244.1.2"); got != "shop/client-0@client" {
		t.Errorf("building new indexes changed an old one: %s", got)
	}
}

func TestNilIndexIsEmpty(t *testing.T) {
	var x *Index
	if x.Lookup(netip.MustParseAddr("10.0.0.1")) != nil || x.Len() != 0 {
		t.Error("nil index is not empty")
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	x := Build([]table.Pod{pod("10.244.1.2", "shop", "c", "client"), pod("fd00::7", "shop", "v6", "client")})
	for _, s := range []string{"10.244.1.2", "::ffff:10.244.1.2", "fd00::7", "10.9.9.9"} {
		a := netip.MustParseAddr(s)
		if n := testing.AllocsPerRun(100, func() { x.Lookup(a) }); n != 0 {
			t.Errorf("Lookup(%s): %v allocations, want 0", s, n)
		}
	}
}

// BenchmarkLookup looks up pod IPs in an index of 10,000 pods.
// Run with: go test ./pkg/proxy/identity -run XXX -bench . -benchmem
func BenchmarkLookup(b *testing.B) {
	pods := make([]table.Pod, 10000)
	for i := range pods {
		pods[i] = pod(fmt.Sprintf("10.244.%d.%d", i/250, i%250+2), "ns", fmt.Sprintf("p%d", i), "sa")
	}
	x := Build(pods)
	hit, miss := netip.MustParseAddr("10.244.20.7"), netip.MustParseAddr("10.1.2.3")
	b.Run("hit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			x.Lookup(hit)
		}
	})
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			x.Lookup(miss)
		}
	})
	b.Run("build", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Build(pods)
		}
	})
}
