package topology

import (
	"cmp"
	"math"
	"math/big"
	"slices"
	"strings"
)

// resolver flattens nested splits. Each split's share of traffic per leaf
// service is kept as an exact fraction (math/big.Rat) and memoized, so a
// diamond of nested splits costs one walk per split, and whether a split
// meets a cycle does not depend on the order splits are resolved in.
type resolver struct {
	b       *builder
	t       *Topology
	owner   map[[2]string]*Split
	memo    map[*Split]*resolved
	onStack map[*Split]bool
}

// resolved is a split's flattened form: each leaf service's fraction of the
// traffic, or the cycle its resolution met.
type resolved struct {
	frac  map[string]*big.Rat
	cycle []string
	notes []string
}

func newResolver(b *builder, t *Topology, owner map[[2]string]*Split) *resolver {
	return &resolver{b: b, t: t, owner: owner, memo: map[*Split]*resolved{}, onStack: map[*Split]bool{}}
}

// resolve returns sp's leaves with integer weights and whether sp stays
// active. Errors (cycle, missing root port) and notes are added to sp.
func (r *resolver) resolve(sp *Split) ([]SplitBackend, bool) {
	leaves, notes, flat := r.flatLeaves(sp)
	if !flat {
		res := r.fractions(sp, []string{sp.Service})
		if res.cycle != nil {
			r.addNotes(sp, res.notes)
			r.b.errs.add(KindTrafficSplit, sp.Namespace, sp.Name, "nested splits form a cycle (%s); split ignored", strings.Join(res.cycle, " -> "))
			return nil, false
		}
		leaves, notes = integerWeights(res.frac, splitSum(sp)), res.notes
	}
	r.addNotes(sp, notes)
	root := r.t.Service(sp.Namespace, sp.Service)
	ok := true
	for _, l := range leaves {
		svc := r.t.Service(sp.Namespace, l.Service)
		for _, p := range root.Ports {
			if svc.Port(p.Port, p.Protocol) == nil {
				r.b.errs.add(KindTrafficSplit, sp.Namespace, sp.Name, "backend %q lacks port %d/%s of root service %q; split ignored", l.Service, p.Port, p.Protocol.Protocol(), sp.Service)
				ok = false
			}
		}
	}
	if !ok {
		return nil, false
	}
	return leaves, true
}

func (r *resolver) addNotes(sp *Split, notes []string) {
	for _, n := range notes {
		r.b.errs.add(KindTrafficSplit, sp.Namespace, sp.Name, "%s", n)
	}
}

// nested returns the active split whose root be is, when sp's traffic to
// be goes on through it; otherwise nil, with a note when be is the root of
// a split that has matches (which do not apply through nesting).
func (r *resolver) nested(sp *Split, be SplitBackend) (*Split, string) {
	inner := r.owner[[2]string{sp.Namespace, be.Service}]
	switch {
	case be.Service == sp.Service || inner == nil || !inner.Active:
		return nil, ""
	case len(inner.Matches) > 0:
		return nil, "backend " + quote(be.Service) + " is the root of TrafficSplit " + quote(inner.Name) +
			", which has matches; A/B matches do not apply through a nested split, so " + quote(be.Service) + "'s own endpoints serve this backend"
	}
	return inner, ""
}

// flatLeaves resolves a split none of whose backends goes on through
// another split, as most splits are: each leaf's weight is the sum of its
// backends' weights, which is what the exact fractions give (all their
// denominators are then 1), without their cost. flat is false for a split
// that nests another, or whose summed weights do not fit in int32 (the
// exact path rounds those).
func (r *resolver) flatLeaves(sp *Split) (leaves []SplitBackend, notes []string, flat bool) {
	sums := make(map[string]int64, len(sp.Backends))
	for _, be := range sp.Backends {
		if be.Weight == 0 {
			continue
		}
		inner, note := r.nested(sp, be)
		if inner != nil {
			return nil, nil, false
		}
		if note != "" {
			notes = append(notes, note)
		}
		sums[be.Service] += int64(be.Weight)
	}
	for name, w := range sums {
		if w > math.MaxInt32 || w < 0 {
			return nil, nil, false
		}
		if w != 0 {
			leaves = append(leaves, SplitBackend{Service: name, Weight: int32(w)})
		}
	}
	slices.SortFunc(leaves, func(a, b SplitBackend) int { return strings.Compare(a.Service, b.Service) })
	slices.Sort(notes)
	return leaves, slices.Compact(notes), true
}

// fractions walks sp's backends. path holds the services from the top split's
// root down to sp's root.
func (r *resolver) fractions(sp *Split, path []string) *resolved {
	if res, ok := r.memo[sp]; ok {
		return res
	}
	r.onStack[sp] = true
	defer delete(r.onStack, sp)

	res := &resolved{frac: map[string]*big.Rat{}}
	total := big.NewRat(splitSum(sp), 1)
	for _, be := range sp.Backends {
		if be.Weight == 0 {
			continue
		}
		share := new(big.Rat).Quo(big.NewRat(int64(be.Weight), 1), total)
		inner, note := r.nested(sp, be)
		switch {
		case inner == nil:
			if note != "" {
				res.notes = append(res.notes, note)
			}
			addFrac(res.frac, be.Service, share)
		case r.onStack[inner]:
			i := slices.Index(path, be.Service)
			res.cycle = append(slices.Clone(path[max(i, 0):]), be.Service)
			r.memo[sp] = res
			return res
		default:
			sub := r.fractions(inner, append(slices.Clone(path), be.Service))
			if sub.cycle != nil {
				res.cycle = sub.cycle
				r.memo[sp] = res
				return res
			}
			for leaf, f := range sub.frac {
				addFrac(res.frac, leaf, new(big.Rat).Mul(share, f))
			}
		}
	}
	slices.Sort(res.notes)
	res.notes = slices.Compact(res.notes)
	r.memo[sp] = res
	return res
}

func addFrac(m map[string]*big.Rat, leaf string, f *big.Rat) {
	if cur, ok := m[leaf]; ok {
		cur.Add(cur, f)
		return
	}
	m[leaf] = new(big.Rat).Set(f)
}

func splitSum(sp *Split) int64 {
	var sum int64
	for _, be := range sp.Backends {
		sum += int64(be.Weight)
	}
	return sum
}

// roundedTotal is the total weight leaves are rounded to when exact weights
// do not fit in int32.
const roundedTotal = 1_000_000

// integerWeights turns exact fractions into integer table weights, sorted by
// service:
//   - exact first: each fraction times the top split's weight sum, times the
//     least common multiple of the denominators. A split without nesting
//     therefore keeps its weights as written (80/20 stays 80/20), and nested
//     ones multiply out exactly (80/20 over a 50/50 gives 80, 10, 10);
//   - if a weight would not fit in int32, weights are rounded to a total of
//     1,000,000 by the largest-remainder method (ties to the smaller service
//     name), so the error is below one millionth per leaf.
//
// Leaves whose weight is 0 are dropped: they would get no traffic.
func integerWeights(frac map[string]*big.Rat, topSum int64) []SplitBackend {
	names := make([]string, 0, len(frac))
	for n := range frac {
		names = append(names, n)
	}
	slices.Sort(names)

	lcm := big.NewInt(1)
	vals := make([]*big.Rat, len(names))
	for i, n := range names {
		vals[i] = new(big.Rat).Mul(frac[n], big.NewRat(topSum, 1))
		d := vals[i].Denom()
		g := new(big.Int).GCD(nil, nil, lcm, d)
		lcm.Mul(lcm, new(big.Int).Quo(d, g))
	}
	out := make([]SplitBackend, 0, len(names))
	fits := true
	for i, n := range names {
		w := new(big.Rat).Mul(vals[i], new(big.Rat).SetInt(lcm))
		if !w.Num().IsInt64() || w.Num().Int64() > math.MaxInt32 {
			fits = false
			break
		}
		out = append(out, SplitBackend{Service: n, Weight: int32(w.Num().Int64())})
	}
	if !fits {
		out = largestRemainder(names, frac)
	}
	return slices.DeleteFunc(out, func(b SplitBackend) bool { return b.Weight == 0 })
}

func largestRemainder(names []string, frac map[string]*big.Rat) []SplitBackend {
	type part struct {
		i   int
		rem *big.Rat
	}
	out := make([]SplitBackend, len(names))
	parts := make([]part, len(names))
	var given int64
	for i, n := range names {
		exact := new(big.Rat).Mul(frac[n], big.NewRat(roundedTotal, 1))
		floor := new(big.Int).Quo(exact.Num(), exact.Denom())
		out[i] = SplitBackend{Service: n, Weight: int32(floor.Int64())}
		given += floor.Int64()
		parts[i] = part{i, new(big.Rat).Sub(exact, new(big.Rat).SetInt(floor))}
	}
	slices.SortStableFunc(parts, func(a, b part) int { return cmp.Compare(0, a.rem.Cmp(b.rem)) })
	for k := 0; given < roundedTotal && k < len(parts); k++ {
		out[parts[k].i].Weight++
		given++
	}
	return out
}

func quote(s string) string { return `"` + s + `"` }
