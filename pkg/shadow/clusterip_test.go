package shadow

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestIPPickerBand(t *testing.T) {
	for _, tc := range []struct {
		cidr, first, last string
	}{
		// size 65,536: the lower 256 addresses after the network one are
		// the static band; the broadcast address is never used.
		{"10.96.0.0/16", "10.96.1.1", "10.96.255.254"},
		// size 256: 16 reserved.
		{"10.0.0.0/24", "10.0.0.17", "10.0.0.254"},
		// size 16: no static band.
		{"10.0.0.0/28", "10.0.0.1", "10.0.0.14"},
		// IPv6 uses its last address.
		{"fd00::/108", "fd00::101", "fd00::f:ffff"},
		{"10.96.5.7/12", "10.96.1.1", "10.111.255.254"}, // masked first
	} {
		p, err := NewIPPicker(tc.cidr)
		if err != nil {
			t.Fatalf("%s: %v", tc.cidr, err)
		}
		first, last := netip.MustParseAddr(tc.first), netip.MustParseAddr(tc.last)
		seen := map[netip.Addr]bool{}
		for i := range 2000 {
			for attempt := range 3 {
				a := p.Pick(fmt.Sprintf("svc-%d--ns", i), attempt)
				if a.Less(first) || last.Less(a) {
					t.Fatalf("%s: %s outside [%s, %s]", tc.cidr, a, first, last)
				}
				seen[a] = true
			}
		}
		if p.count >= 6000 && len(seen) < 5000 {
			t.Errorf("%s: 6,000 picks gave only %d addresses", tc.cidr, len(seen))
		}
	}
}

func TestIPPickerIsStable(t *testing.T) {
	p, err := NewIPPicker("10.96.0.0/12")
	if err != nil {
		t.Fatal(err)
	}
	a, b := p.Pick("web--shop", 0), p.Pick("web--shop", 0)
	if a != b {
		t.Errorf("the same name gave %s and %s", a, b)
	}
	if p.Pick("web--shop", 1) == a {
		t.Error("attempt 1 gave attempt 0's address")
	}
	if p.Pick("api--shop", 0) == a {
		t.Error("two names gave one address (possible, but not for these)")
	}
}

func TestIPPickerRejects(t *testing.T) {
	for _, cidr := range []string{"", "10.0.0.1", "10.0.0.0/31", "10.0.0.0/32", "fd00::/128"} {
		if _, err := NewIPPicker(cidr); err == nil {
			t.Errorf("%q accepted", cidr)
		}
	}
}
