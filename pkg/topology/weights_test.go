package topology

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestFlatLeavesMatchExactFractions: for splits that nest no other split
// (backends listed twice, zero weights, the root as its own backend, roots
// of splits that are inactive or have matches), the flat resolution gives
// the exact path's leaves and notes; a split that nests one, or whose sums
// overflow int32, is left to the exact path.
func TestFlatLeavesMatchExactFractions(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	owner := map[[2]string]*Split{
		{"ns", "inactive"}: {Namespace: "ns", Name: "s-inactive", Service: "inactive", Active: false},
		{"ns", "ab"}:       {Namespace: "ns", Name: "s-ab", Service: "ab", Active: true, Matches: []SplitMatch{{Kind: "HTTPRouteGroup", Name: "g"}}},
		{"ns", "nested"}:   {Namespace: "ns", Name: "s-nested", Service: "nested", Active: true, Backends: []SplitBackend{{Service: "a", Weight: 1}}},
	}
	names := []string{"root", "a", "b", "c", "inactive", "ab"}
	for run := range 2000 {
		sp := &Split{Namespace: "ns", Name: "s", Service: "root", Active: true}
		for range 1 + r.IntN(5) {
			w := int32(r.IntN(4) * r.IntN(40))
			if r.IntN(50) == 0 {
				w = math.MaxInt32 - int32(r.IntN(3))
			}
			sp.Backends = append(sp.Backends, SplitBackend{Service: names[r.IntN(len(names))], Weight: w})
		}
		if splitSum(sp) == 0 {
			continue
		}
		res := newResolver(&builder{}, &Topology{}, owner)
		leaves, notes, flat := res.flatLeaves(sp)
		if !flat {
			var overflow bool
			sums := map[string]int64{}
			for _, be := range sp.Backends {
				sums[be.Service] += int64(be.Weight)
				overflow = overflow || sums[be.Service] > math.MaxInt32
			}
			if !overflow {
				t.Fatalf("run %d: %+v not resolved flat", run, sp.Backends)
			}
			continue
		}
		exact := res.fractions(sp, []string{sp.Service})
		want := integerWeights(exact.frac, splitSum(sp))
		if !reflect.DeepEqual(leaves, want) || fmt.Sprint(notes) != fmt.Sprint(exact.notes) {
			t.Fatalf("run %d: %+v: flat gives %+v %q, exact %+v %q", run, sp.Backends, leaves, notes, want, exact.notes)
		}
	}
	nesting := &Split{Namespace: "ns", Name: "s", Service: "root", Active: true, Backends: []SplitBackend{{Service: "nested", Weight: 1}, {Service: "b", Weight: 1}}}
	if _, _, flat := newResolver(&builder{}, &Topology{}, owner).flatLeaves(nesting); flat {
		t.Error("a split nesting an active one was resolved flat")
	}
}
