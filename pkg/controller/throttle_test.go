package controller

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
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

// TestThrottleFollowsRebuilds: the interval is four rebuilds long (ten
// while shadow writes are pending), within its bounds.
func TestThrottleFollowsRebuilds(t *testing.T) {
	th := newThrottle(25*time.Millisecond, 500*time.Millisecond)
	now := time.Unix(1000, 0)
	th.now = func() time.Time { return now }
	for _, tt := range []struct {
		rebuild time.Duration
		backlog bool
		want    time.Duration
	}{
		{2 * time.Millisecond, false, 25 * time.Millisecond},    // small mesh: the floor
		{20 * time.Millisecond, false, 80 * time.Millisecond},   // four rebuilds
		{20 * time.Millisecond, true, 200 * time.Millisecond},   // ten, during a backlog
		{2 * time.Millisecond, true, 25 * time.Millisecond},     // the floor still
		{300 * time.Millisecond, false, 500 * time.Millisecond}, // large mesh: the ceiling
		{300 * time.Millisecond, true, 500 * time.Millisecond},
	} {
		th.follow(tt.rebuild, tt.backlog)
		now = now.Add(time.Hour) // quiet: the next event rebuilds at once
		if d := th.delay(); d != 0 {
			t.Fatalf("after a quiet hour: delay %s", d)
		}
		now = now.Add(time.Millisecond)
		if got := th.delay(); got != tt.want-time.Millisecond {
			t.Errorf("rebuild of %s (backlog %v): an event 1 ms after a rebuild waits %s, want %s", tt.rebuild, tt.backlog, got, tt.want-time.Millisecond)
		}
	}
}

// TestShadowDelayAwaitedNames: the event of a shadow the fresh lane wrote
// rebuilds at once, even within the throttle's interval, and only once;
// other shadow events are spaced by the throttle.
func TestShadowDelayAwaitedNames(t *testing.T) {
	c := &Controller{shadowKicks: newThrottle(500*time.Millisecond, 500*time.Millisecond)}
	now := time.Unix(1000, 0)
	c.shadowKicks.now = func() time.Time { return now }
	w := &shadowWriter{awaited: map[string]time.Time{"web--shop": now}}
	c.writer.Store(w)
	svc := func(name string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "nodemesh", Name: name}}
	}

	if d := c.shadowDelay(svc("bulk-1--shop")); d != 0 {
		t.Fatalf("first event: delay %s, want none (leading edge)", d)
	}
	now = now.Add(10 * time.Millisecond)
	if d := c.shadowDelay(svc("bulk-2--shop")); d != 490*time.Millisecond {
		t.Errorf("a backlog's next event: delay %s, want 490ms", d)
	}
	if d := c.shadowDelay(cache.DeletedFinalStateUnknown{Key: "nodemesh/web--shop", Obj: svc("web--shop")}); d != 0 {
		t.Errorf("the awaited shadow (as a tombstone): delay %s, want none", d)
	}
	if d := c.shadowDelay(svc("web--shop")); d == 0 {
		t.Error("the awaited shadow's second event: no delay; it should be awaited once")
	}
}
