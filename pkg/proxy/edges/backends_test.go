package edges

import (
	"net/netip"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/table"
)

func TestStreamBackends(t *testing.T) {
	sr := &table.StreamRoute{Backends: []table.Backend{
		{Service: table.ServiceRef{Namespace: "shop", Name: "db-v1"}, Endpoints: []table.Endpoint{{Address: "10.244.1.5:5432"}, {Address: "bad"}}},
		{Service: table.ServiceRef{Namespace: "shop", Name: "db-v2"}, Endpoints: []table.Endpoint{{Address: "10.244.1.5:5432"}, {Address: "10.244.1.6:5432"}}},
	}}
	b := StreamBackends(sr)
	for ep, want := range map[string]string{
		"10.244.1.5:5432":          "db-v1", // in both backends: the first
		"10.244.1.6:5432":          "db-v2",
		"[::ffff:10.244.1.6]:5432": "db-v2", // IPv4-mapped, as a dual-stack socket reports it
		"10.244.1.7:5432":          UnknownValue,
	} {
		if got := b.Of(netip.MustParseAddrPort(ep)); got != want {
			t.Errorf("%s: %q, want %q", ep, got, want)
		}
	}
	if len(b) != 2 {
		t.Errorf("%d endpoints mapped, want 2 (the malformed one skipped)", len(b))
	}
}
