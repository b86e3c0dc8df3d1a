package portalloc

import (
	"math/rand/v2"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

func tcp(svc string, port int32) Key {
	return Key{Service: types.NamespacedName{Namespace: "ns", Name: svc}, Port: port, Protocol: corev1.ProtocolTCP}
}

func udp(svc string, port int32) Key {
	k := tcp(svc, port)
	k.Protocol = corev1.ProtocolUDP
	return k
}

var small = Ranges{TCP: Range{Min: 100, Max: 103}, UDP: Range{Min: 200, Max: 200}}

func TestAllocate(t *testing.T) {
	tests := []struct {
		name      string
		wanted    []Key
		existing  []Allocation
		want      map[Key]int32
		exhausted []Key
	}{
		{
			name:   "fresh keys take the lowest ports in sorted order",
			wanted: []Key{tcp("b", 1), udp("a", 53), tcp("a", 2), tcp("a", 1)},
			want:   map[Key]int32{tcp("a", 1): 100, tcp("a", 2): 101, tcp("b", 1): 102, udp("a", 53): 200},
		},
		{
			name:     "existing allocations are kept and new keys fill the gaps",
			wanted:   []Key{tcp("a", 1), tcp("b", 1), tcp("c", 1)},
			existing: []Allocation{{tcp("b", 1), 100}, {tcp("a", 1), 102}},
			want:     map[Key]int32{tcp("a", 1): 102, tcp("b", 1): 100, tcp("c", 1): 101},
		},
		{
			name:     "ports of keys no longer wanted are freed",
			wanted:   []Key{tcp("new", 1)},
			existing: []Allocation{{tcp("gone", 1), 100}},
			want:     map[Key]int32{tcp("new", 1): 100},
		},
		{
			name:     "an allocation outside the range is replaced",
			wanted:   []Key{tcp("a", 1)},
			existing: []Allocation{{tcp("a", 1), 9999}},
			want:     map[Key]int32{tcp("a", 1): 100},
		},
		{
			name:     "a contested port goes to the first key in order",
			wanted:   []Key{tcp("a", 1), tcp("b", 1)},
			existing: []Allocation{{tcp("b", 1), 101}, {tcp("a", 1), 101}},
			want:     map[Key]int32{tcp("a", 1): 101, tcp("b", 1): 100},
		},
		{
			name:     "a key listed twice in existing keeps its lowest port",
			wanted:   []Key{tcp("a", 1)},
			existing: []Allocation{{tcp("a", 1), 103}, {tcp("a", 1), 102}},
			want:     map[Key]int32{tcp("a", 1): 102},
		},
		{
			name:     "the same number on TCP and UDP are different keys",
			wanted:   []Key{tcp("dns", 53), udp("dns", 53)},
			existing: []Allocation{{udp("dns", 53), 100}}, // a UDP port cannot keep a TCP-range port
			want:     map[Key]int32{tcp("dns", 53): 100, udp("dns", 53): 200},
		},
		{
			name:      "exhaustion is reported, never silent; existing keys keep theirs",
			wanted:    []Key{tcp("a", 1), tcp("a", 2), tcp("a", 3), tcp("a", 4), tcp("a", 5), udp("a", 1), udp("b", 1)},
			existing:  []Allocation{{tcp("a", 5), 103}, {udp("b", 1), 200}},
			want:      map[Key]int32{tcp("a", 1): 100, tcp("a", 2): 101, tcp("a", 3): 102, tcp("a", 5): 103, udp("b", 1): 200},
			exhausted: []Key{tcp("a", 4), udp("a", 1)},
		},
		{
			name:   "other protocols are ignored",
			wanted: []Key{{Service: types.NamespacedName{Namespace: "ns", Name: "s"}, Port: 1, Protocol: corev1.ProtocolSCTP}},
			want:   map[Key]int32{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Allocate(small, tt.wanted, tt.existing)
			if !reflect.DeepEqual(got.Ports, tt.want) {
				t.Errorf("ports = %v, want %v", got.Ports, tt.want)
			}
			if !reflect.DeepEqual(got.Exhausted, tt.exhausted) {
				t.Errorf("exhausted = %v, want %v", got.Exhausted, tt.exhausted)
			}
		})
	}
}

// TestAllocateStable: feeding an allocation back in as existing (what a
// controller restart does) gives the same allocation, in any input order.
func TestAllocateStable(t *testing.T) {
	var wanted []Key
	for i := range int32(50) {
		wanted = append(wanted, tcp("svc", i+1), udp("svc", i+1))
	}
	ranges := Ranges{TCP: DefaultTCPRange, UDP: DefaultUDPRange}
	first := Allocate(ranges, wanted, nil)
	var back []Allocation
	for k, p := range first.Ports {
		back = append(back, Allocation{k, p})
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 5 {
		r.Shuffle(len(wanted), func(i, j int) { wanted[i], wanted[j] = wanted[j], wanted[i] })
		r.Shuffle(len(back), func(i, j int) { back[i], back[j] = back[j], back[i] })
		if again := Allocate(ranges, wanted, back); !reflect.DeepEqual(again.Ports, first.Ports) {
			t.Fatal("allocation changed when fed back")
		}
		if fresh := Allocate(ranges, wanted, nil); !reflect.DeepEqual(fresh.Ports, first.Ports) {
			t.Fatal("a fresh allocation depends on input order")
		}
	}
}

func TestInvalidRangeExhausts(t *testing.T) {
	got := Allocate(Ranges{TCP: Range{}, UDP: DefaultUDPRange}, []Key{tcp("a", 1)}, []Allocation{{tcp("a", 1), 5}})
	if len(got.Ports) != 0 || len(got.Exhausted) != 1 {
		t.Fatalf("got %+v", got)
	}
}

func TestParseRange(t *testing.T) {
	for in, want := range map[string]Range{"10000-10999": {10000, 10999}, " 1 - 65535 ": {1, 65535}, "5-5": {5, 5}} {
		if got, err := ParseRange(in); err != nil || got != want {
			t.Errorf("ParseRange(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "10000", "10-5", "0-10", "1-65536", "a-b", "1-2-3"} {
		if _, err := ParseRange(in); err == nil {
			t.Errorf("ParseRange(%q) succeeded", in)
		}
	}
	if DefaultTCPRange.Overlaps(DefaultUDPRange) || !DefaultTCPRange.Overlaps(Range{10999, 11000}) {
		t.Error("Overlaps is wrong")
	}
	if DefaultTCPRange.String() != "10000-10999" {
		t.Error(DefaultTCPRange.String())
	}
}
