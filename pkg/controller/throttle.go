package controller

import (
	"sync"
	"time"
)

// throttle spaces out the rebuilds that shadow Service events ask for: at
// most one per interval, and the first one at once (leading edge).
//
// Shadow events are mostly the echo of the controller's own writes; they
// only add a new shadow's ClusterIP to its route's hosts. During a backlog
// of 1,000 creates, a rebuild per event would make every proxy fetch one
// table per write. A fixed delay on every event (what this replaced) made a
// lone new Service wait that delay for its ClusterIP even on an idle
// controller. With the leading edge, a lone event rebuilds at once; a
// stream of events costs one rebuild per interval. The interval follows
// the rebuilds' cost (follow), so that a backlog's rebuilds take at most a
// quarter of the one rebuild worker's time, whatever the mesh's size.
//
// The workqueue's AddAfter keeps one pending delayed key, the earliest, so
// every event of an interval coalesces into the one scheduled rebuild.
type throttle struct {
	interval       time.Duration
	floor, ceiling time.Duration // the bounds of follow
	now            func() time.Time

	mu        sync.Mutex
	last      time.Time // the latest rebuild granted, at once or scheduled
	scheduled time.Time // a scheduled rebuild not yet due, or zero
}

// newThrottle returns a throttle of interval ceiling until follow sets it.
func newThrottle(floor, ceiling time.Duration) *throttle {
	return &throttle{interval: ceiling, floor: floor, ceiling: ceiling, now: time.Now}
}

// rebuildShare is the share of the rebuild worker's time that rebuilds
// asked for by shadow events may take: follow sets the interval to
// rebuildShare times a rebuild's duration. While shadow writes are pending
// (a cold start's backlog) it is backlogRebuildShare: those events are the
// echoes of the controller's own writes, the shadows the fresh lane writes
// for Services just created rebuild at once whatever the interval
// (Controller.shadowDelay), and on a control plane that shares its cores
// with the controller, the CPU the rebuilds and their garbage take is CPU
// the apiserver lacks to create the rest.
const (
	rebuildShare        = 4
	backlogRebuildShare = 10
)

// follow sets the interval from the duration of the latest rebuild: four
// times it (ten while shadow writes are pending), within [floor, ceiling]. A rebuild costs 2 ms at 100 services and
// 50 ms at 3,000 under load; a fixed interval long enough for the largest
// mesh made a small one wait for nothing, and made a new Service of any
// mesh wait up to that interval for its shadow's ClusterIP when another
// shadow had been written shortly before.
func (t *throttle) follow(rebuild time.Duration, backlog bool) {
	share := time.Duration(rebuildShare)
	if backlog {
		share = backlogRebuildShare
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.interval = min(max(share*rebuild, t.floor), t.ceiling)
}

// delay returns how long the rebuild an event asks for waits: zero when no
// rebuild was granted within the last interval, else until the end of that
// interval (the same instant for every event until then).
func (t *throttle) delay() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if now.Before(t.scheduled) {
		return t.scheduled.Sub(now)
	}
	if t.last.IsZero() || now.Sub(t.last) >= t.interval {
		t.last = now
		return 0
	}
	t.scheduled = t.last.Add(t.interval)
	t.last = t.scheduled
	return t.scheduled.Sub(now)
}
