// Package gctune gives the Go collector a minimum headroom: after every
// collection it sets the GC target percentage (GOGC) so that the heap may
// grow by at least a given number of bytes above what is live before the
// next collection, and by at least the floor percentage in any case.
//
// Why: with GOGC 100, a process whose live heap is a few MiB collects
// every few MiB of allocation. The node proxy with a small table allocates
// about 3 KB per request, so it collected several times a second under
// load, and each collection's mark phase, sharing the proxy's one core,
// delayed the requests in flight: p99 latency at 2,000 requests a second
// was 1.7–2.3 ms with GOGC 100 and 0.8–0.9 ms with GOGC 400 in one series
// of runs (docs/proxy.md). A fixed higher GOGC costs memory in proportion
// to the live heap, which is large with a large table (RSS 47.7 MiB at
// GOGC 200 with 1,000 services against 37.9 at GOGC 100). A fixed headroom
// costs the same few MiB whatever the table, and a large live heap falls
// back to the floor.
//
// Go has no minimum-heap setting (GOMEMLIMIT is a ceiling), and the
// libraries that retune GOGC after each collection aim at a memory ceiling
// too, hence this package. It learns of each collection the usual way: a
// finalizer on an object it drops, which runs after the collection that
// found it unreachable, and which sets up the next one.
package gctune

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// Options are the tuner's bounds.
type Options struct {
	// Headroom is the least growth, in bytes, allowed above the live heap.
	Headroom uint64
	// MinPercent is the least GC percentage ever set (the floor), and
	// MaxPercent the most.
	MinPercent, MaxPercent int
}

// Percent returns the GC percentage that lets the heap grow by at least
// o.Headroom, within [o.MinPercent, o.MaxPercent]. base is what the
// percentage applies to: Go's heap goal is the live heap plus GOGC% of the
// live heap, the stacks scanned and the scannable globals together.
func (o Options) Percent(base uint64) int {
	if base == 0 {
		return o.MaxPercent
	}
	p := math.Ceil(100 * float64(o.Headroom) / float64(base))
	return int(min(max(p, float64(o.MinPercent)), float64(o.MaxPercent)))
}

// Tuner retunes GOGC after every collection until Stop.
type Tuner struct {
	opts    Options
	stopped atomic.Bool
	sample  []metrics.Sample

	mu      sync.Mutex
	percent int // the value set last
}

// baseMetrics are the parts of the heap goal's base: the heap marked live
// by the last collection, the stacks it scanned and the scannable globals.
var baseMetrics = []string{"/gc/heap/live:bytes", "/gc/scan/stack:bytes", "/gc/scan/globals:bytes"}

// Start sets GOGC to o.MinPercent (the live heap is not known before the
// first collection) and retunes it after every collection.
func Start(o Options) *Tuner {
	t := &Tuner{opts: o}
	for _, m := range baseMetrics {
		t.sample = append(t.sample, metrics.Sample{Name: m})
	}
	t.set(o.MinPercent)
	t.arm()
	return t
}

// Percent returns the GC percentage set last.
func (t *Tuner) Percent() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.percent
}

// Stop ends the retuning; GOGC keeps its last value.
func (t *Tuner) Stop() { t.stopped.Store(true) }

// sentinel is dropped at once; its finalizer runs after the next collection.
type sentinel struct{ _ [16]byte } // not zero-sized: those are not allocated

func (t *Tuner) arm() {
	runtime.SetFinalizer(&sentinel{}, func(*sentinel) {
		if t.stopped.Load() {
			return
		}
		t.tune()
		t.arm()
	})
}

// tune reads the live heap and sets the percentage it calls for, when that
// differs from the current one by more than a twentieth (each set is cheap,
// but a live heap that wobbles need not move GOGC every cycle).
func (t *Tuner) tune() {
	metrics.Read(t.sample)
	var base uint64
	for _, s := range t.sample {
		if s.Value.Kind() != metrics.KindUint64 {
			return // a runtime without the metric: leave GOGC alone
		}
		base += s.Value.Uint64()
	}
	want := t.opts.Percent(base)
	t.mu.Lock()
	cur := t.percent
	t.mu.Unlock()
	if diff := want - cur; diff*20 > cur || -diff*20 > cur {
		t.set(want)
	}
}

func (t *Tuner) set(p int) {
	t.mu.Lock()
	t.percent = p
	t.mu.Unlock()
	debug.SetGCPercent(p)
}
