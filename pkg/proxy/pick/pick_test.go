package pick

import (
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/table"
)

func backend(name string, weight int32, addrs ...string) table.Backend {
	b := table.Backend{Service: table.ServiceRef{Namespace: "ns", Name: name}, Weight: weight}
	for _, a := range addrs {
		b.Endpoints = append(b.Endpoints, table.Endpoint{Address: a})
	}
	return b
}

func aps(ss ...string) []netip.AddrPort {
	out := make([]netip.AddrPort, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddrPort(s)
	}
	return out
}

func TestCandidatesOrder(t *testing.T) {
	tests := []struct {
		name     string
		backends []table.Backend
		max      int
		draws    []int64 // values returned by intn, in order
		want     [][]netip.AddrPort
	}{
		{
			name:     "round robin within one backend, failover wraps around it",
			backends: []table.Backend{backend("a", 1, "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")},
			max:      3,
			want: [][]netip.AddrPort{
				aps("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"),
				aps("10.0.0.2:80", "10.0.0.3:80", "10.0.0.1:80"),
			},
		},
		{
			name:     "max is capped by the endpoint count",
			backends: []table.Backend{backend("a", 1, "10.0.0.1:80")},
			max:      5,
			want:     [][]netip.AddrPort{aps("10.0.0.1:80")},
		},
		{
			name:     "failover moves on to the next backend after the chosen one",
			backends: []table.Backend{backend("a", 1, "10.0.0.1:80"), backend("b", 3, "10.0.1.1:80", "10.0.1.2:80")},
			max:      3,
			draws:    []int64{2, 0},
			want: [][]netip.AddrPort{
				aps("10.0.1.1:80", "10.0.1.2:80", "10.0.0.1:80"),
				aps("10.0.0.1:80", "10.0.1.2:80", "10.0.1.1:80"),
			},
		},
		{
			name:     "weight zero and empty backends take no traffic",
			backends: []table.Backend{backend("a", 0, "10.0.0.1:80"), backend("b", 5), backend("c", 1, "10.0.2.1:80")},
			max:      3,
			want:     [][]netip.AddrPort{aps("10.0.2.1:80")},
		},
		{
			name:     "nothing to pick",
			backends: []table.Backend{backend("a", 0, "10.0.0.1:80")},
			max:      3,
			want:     [][]netip.AddrPort{nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.backends)
			if err != nil {
				t.Fatal(err)
			}
			draws := tt.draws
			s.intn = func(n int64) int64 {
				if len(draws) == 0 {
					t.Fatalf("unexpected draw")
				}
				d := draws[0]
				draws = draws[1:]
				return d
			}
			for i, want := range tt.want {
				if got := s.Candidates(tt.max); !reflect.DeepEqual(got, want) {
					t.Errorf("call %d: got %v, want %v", i, got, want)
				}
			}
		})
	}
}

func TestWeightedChoiceWithinTolerance(t *testing.T) {
	s, err := New([]table.Backend{
		backend("a", 1, "10.0.0.1:80"),
		backend("b", 3, "10.0.1.1:80"),
		backend("c", 6, "10.0.2.1:80", "10.0.2.2:80"),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	s.intn = r.Int64N
	const n = 100000
	counts := map[string]int{}
	for range n {
		c := s.Candidates(1)
		counts[c[0].Addr().String()[:7]]++
	}
	want := map[string]float64{"10.0.0.": 0.1, "10.0.1.": 0.3, "10.0.2.": 0.6}
	for prefix, share := range want {
		got := float64(counts[prefix]) / n
		// 100,000 draws: one standard deviation is under 0.0016.
		if got < share-0.01 || got > share+0.01 {
			t.Errorf("backend %s: share %.4f, want %.2f±0.01", prefix, got, share)
		}
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	tests := []struct {
		name    string
		backend table.Backend
		wantErr string
	}{
		{"address without port", backend("a", 1, "10.0.0.1"), `endpoint "10.0.0.1"`},
		{"host name", backend("a", 1, "web:80"), `endpoint "web:80"`},
		{"negative weight", backend("a", -1, "10.0.0.1:80"), "negative weight"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New([]table.Backend{tt.backend})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestContains(t *testing.T) {
	s, err := New([]table.Backend{backend("a", 1, "10.0.0.1:80"), backend("b", 0, "10.0.0.2:80")})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Contains(netip.MustParseAddrPort("10.0.0.1:80")) {
		t.Error("live endpoint not found")
	}
	if s.Contains(netip.MustParseAddrPort("10.0.0.2:80")) {
		t.Error("endpoint of a weight-0 backend reported as live")
	}
}
