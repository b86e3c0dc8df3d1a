package controller

import (
	"testing"
	"time"
)

// TestThrottle: a lone event rebuilds at once; events within an interval of
// the last granted rebuild share one scheduled rebuild at the interval's
// end; a stream of events costs one rebuild per interval.
func TestThrottle(t *testing.T) {
	const iv = 500 * time.Millisecond
	base := time.Unix(1000, 0)
	steps := []struct {
		at   time.Duration // since base
		want time.Duration // the delay granted
	}{
		{0, 0}, // lone event: at once
		{100 * time.Millisecond, 400 * time.Millisecond}, // within the interval: at its end
		{300 * time.Millisecond, 200 * time.Millisecond}, // coalesces into the same rebuild
		{500 * time.Millisecond, 500 * time.Millisecond}, // the scheduled one is due now; the next slot is 1 s
		{600 * time.Millisecond, 400 * time.Millisecond},
		{2 * time.Second, 0},    // quiet for over an interval: at once again
		{2*time.Second + iv, 0}, // exactly one interval later: at once
	}
	th := newThrottle(iv/10, iv)
	var now time.Time
	th.now = func() time.Time { return now }
	for _, s := range steps {
		now = base.Add(s.at)
		if got := th.delay(); got != s.want {
			t.Errorf("event at +%s: delay %s, want %s", s.at, got, s.want)
		}
	}
}

// TestThrottleFollowsRebuilds: the interval is four rebuilds long, within
// its bounds.
func TestThrottleFollowsRebuilds(t *testing.T) {
	th := newThrottle(25*time.Millisecond, 500*time.Millisecond)
	now := time.Unix(1000, 0)
	th.now = func() time.Time { return now }
	for _, tt := range []struct{ rebuild, want time.Duration }{
		{2 * time.Millisecond, 25 * time.Millisecond},    // small mesh: the floor
		{20 * time.Millisecond, 80 * time.Millisecond},   // four rebuilds
		{300 * time.Millisecond, 500 * time.Millisecond}, // large mesh: the ceiling
	} {
		th.follow(tt.rebuild)
		now = now.Add(time.Hour) // quiet: the next event rebuilds at once
		if d := th.delay(); d != 0 {
			t.Fatalf("after a quiet hour: delay %s", d)
		}
		now = now.Add(time.Millisecond)
		if got := th.delay(); got != tt.want-time.Millisecond {
			t.Errorf("rebuild of %s: an event 1 ms after a rebuild waits %s, want %s", tt.rebuild, got, tt.want-time.Millisecond)
		}
	}
}
