package distribution

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// A table's pod list holds every pod IP of the mesh (15,000 at 3,000
// services of 5 pods), and any pod that starts, stops or moves changes it.
// A delta therefore carries the pods' changes rather than the list: the pods
// removed since the base and the pods added, each a pod list as in a table
// ("podsRemoved" and "podsAdded"). The proxy takes its base's pods, removes
// each removed pod (which must be there), adds the added ones and sorts.
//
// The server keeps each version's step from its predecessor, and composes
// the steps between a base and the current version into one change. A step
// it did not keep (the first version, or one where most pods changed) makes
// the delta carry the whole list, as before.

// podStep is how a version's pods differ from its predecessor's; equal
// lists make an empty step.
type podStep struct {
	whole          bool // no step kept: a delta across it sends the list
	removed, added []table.Pod
}

// maxStepShare bounds a kept step: one that changes more than half of the
// pods is sent as the list, which is then no larger.
const maxStepShare = 2

// stepBetween returns how cur differs from prev.
func stepBetween(prev, cur table.PodList, samePart bool) podStep {
	if samePart {
		return podStep{}
	}
	// Pods are compared as a proxy decodes them (Canonical), which is
	// what it will look for in its base.
	count := make(map[table.Pod]int, len(prev))
	for _, p := range prev {
		count[p.Canonical()]++
	}
	var st podStep
	for _, p := range cur {
		if c := p.Canonical(); count[c] > 0 {
			count[c]--
		} else {
			st.added = append(st.added, c)
		}
	}
	for _, p := range prev { // prev's order keeps the step deterministic
		if c := p.Canonical(); count[c] > 0 {
			count[c]--
			st.removed = append(st.removed, c)
		}
	}
	if (len(st.removed)+len(st.added))*maxStepShare > len(cur) {
		return podStep{whole: true}
	}
	return st
}

// composeSteps returns the net change of steps applied in order, or ok
// false when one of them was not kept.
func composeSteps(steps []podStep) (removed, added []table.Pod, ok bool) {
	net := map[table.Pod]int{}
	var order []table.Pod // first appearance, for a deterministic result
	for _, st := range steps {
		if st.whole {
			return nil, nil, false
		}
		for _, p := range st.removed {
			if _, seen := net[p]; !seen {
				order = append(order, p)
			}
			net[p]--
		}
		for _, p := range st.added {
			if _, seen := net[p]; !seen {
				order = append(order, p)
			}
			net[p]++
		}
	}
	for _, p := range order {
		for n := net[p]; n < 0; n++ {
			removed = append(removed, p)
		}
		for n := net[p]; n > 0; n-- {
			added = append(added, p)
		}
	}
	return removed, added, true
}

// applyPodChanges rebuilds a pod list from base: without the removed pods
// (each must be in base) and with the added ones, sorted as a decoded list.
// A decoded base is sorted already, so the added pods are merged into it in
// one pass rather than the whole list sorted again.
func applyPodChanges(base, removed, added table.PodList) (table.PodList, error) {
	drop := make(map[table.Pod]int, len(removed))
	for _, p := range removed {
		drop[p]++
	}
	added = slices.Clone(added)
	table.SortPods(added)
	out := make(table.PodList, 0, len(base)-len(removed)+len(added))
	j := 0
	for _, p := range base {
		if len(drop) > 0 && drop[p] > 0 {
			drop[p]--
			continue
		}
		for j < len(added) && table.ComparePods(added[j], p) < 0 {
			out = append(out, added[j])
			j++
		}
		out = append(out, p)
	}
	out = append(out, added[j:]...)
	for p, n := range drop {
		if n > 0 {
			return nil, fmt.Errorf("decode delta: removed pod %s/%s (%s) is not in the base", p.Namespace, p.Name, p.IP)
		}
	}
	if !slices.IsSortedFunc(out, table.ComparePods) { // a base not in decoded order
		table.SortPods(out)
	}
	if len(out) == 0 {
		return nil, nil // as a table decoded whole has it
	}
	return out, nil
}

// appendPodChanges appends the delta's "podsRemoved" and "podsAdded".
func appendPodChanges(b []byte, removed, added []table.Pod) []byte {
	for _, f := range []struct {
		name string
		pods []table.Pod
	}{{"podsRemoved", removed}, {"podsAdded", added}} {
		if len(f.pods) == 0 {
			continue
		}
		enc, err := json.Marshal(table.PodList(f.pods))
		if err != nil {
			// A PodList holds only strings, which encoding/json cannot
			// fail on.
			panic(fmt.Sprintf("distribution: encoding pods failed: %v", err))
		}
		b = append(append(append(append(b, `,"`...), f.name...), `":`...), enc...)
	}
	return b
}

var errPodsTwice = errors.New("decode delta: pods given both whole and as changes")
