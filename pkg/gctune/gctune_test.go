package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	o := Options{Headroom: 8 << 20, MinPercent: 100, MaxPercent: 800}
	for _, tt := range []struct {
		live uint64
		want int
	}{
		{0, 800},         // nothing known: the most
		{512 << 10, 800}, // 8 MiB would be 1,600%: the ceiling
		{4 << 20, 200},   // 8 MiB above 4 MiB live
		{3 << 20, 267},   // rounded up
		{8 << 20, 100},   // the headroom is the live heap
		{100 << 20, 100}, // a large live heap: the floor
	} {
		if got := o.Percent(tt.live); got != tt.want {
			t.Errorf("Percent(%d KiB) = %d, want %d", tt.live>>10, got, tt.want)
		}
	}
}

var keep [][]byte // the live heap the test sets

// percentAfterGC collects until the tuner has run on a collection that
// saw the current heap, and returns what it set.
func percentAfterGC(t *testing.T, tu *Tuner) int {
	t.Helper()
	runtime.GC()
	deadline := time.Now().Add(5 * time.Second)
	last := -1
	for time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // the finalizer goroutine runs
		p := tu.Percent()
		if p == last {
			return p
		}
		last = p
	}
	t.Fatal("the tuner's percentage did not settle")
	return 0
}

// TestTunerFollowsTheLiveHeap: a small live heap gets a high percentage,
// a large one the floor, and Stop leaves GOGC as it was last set.
// (It holds about 100 MiB for a moment.)
func TestTunerFollowsTheLiveHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tu := Start(Options{Headroom: 64 << 20, MinPercent: 100, MaxPercent: 100000})
	defer tu.Stop()

	keep = [][]byte{make([]byte, 4<<20)}
	small := percentAfterGC(t, tu)
	if small < 400 { // 64 MiB over about 4 MiB and the test binary's own heap
		t.Errorf("live heap of about 4 MiB: GOGC %d, want well above 400", small)
	}
	for range 12 {
		keep = append(keep, make([]byte, 8<<20))
	}
	large := percentAfterGC(t, tu)
	if large > 100 { // 100 MiB live: the 64 MiB headroom is below 100%
		t.Errorf("live heap of about 100 MiB: GOGC %d, want the floor of 100", large)
	}
	keep = nil
	tu.Stop()
	runtime.GC()
	runtime.GC()
	time.Sleep(20 * time.Millisecond)
	if got := debug.SetGCPercent(large); got != large {
		t.Errorf("after Stop, GOGC is %d, want %d as last set", got, large)
	}
}
