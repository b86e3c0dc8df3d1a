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
	th := newThrottle(iv)
	var now time.Time
	th.now = func() time.Time { return now }
	for _, s := range steps {
		now = base.Add(s.at)
		if got := th.delay(); got != s.want {
			t.Errorf("event at +%s: delay %s, want %s", s.at, got, s.want)
		}
	}
}
