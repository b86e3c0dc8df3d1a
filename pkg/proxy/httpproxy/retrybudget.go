package httpproxy

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// budgetSlots is how many slots a retry budget's window is cut into: the
// window slides by a tenth of itself.
const budgetSlots = 10

// retryBudget lets retries add at most Percent of the requests of a
// sliding window (issue 11: retries must never multiply an outage), or
// MinPerSecond per second of the window when that is more, so a quiet
// service can still retry. Linkerd's retry budget works the same way;
// Envoy's counts concurrent retries instead, which a per-node proxy with
// short requests would rarely see.
type retryBudget struct {
	cfg       table.RetryBudget
	slotWidth int64 // nanoseconds
	floor     int64 // retries always allowed per window
	now       func() time.Time
	exhausted prometheus.Counter // retries refused; may be nil

	mu    sync.Mutex
	slots [budgetSlots]budgetSlot
}

type budgetSlot struct {
	index             int64 // which slot of time this is (time / slotWidth)
	requests, retries int64
}

func newRetryBudget(cfg table.RetryBudget, exhausted prometheus.Counter) *retryBudget {
	w := cfg.Window.D()
	return &retryBudget{
		cfg:       cfg,
		exhausted: exhausted,
		slotWidth: max(int64(w)/budgetSlots, 1),
		floor:     int64(cfg.MinPerSecond) * int64(w) / int64(time.Second),
		now:       time.Now,
	}
}

// slot returns the current slot, resetting it if it held an older one.
// The caller holds mu.
func (b *retryBudget) slot(idx int64) *budgetSlot {
	s := &b.slots[idx%budgetSlots]
	if s.index != idx {
		*s = budgetSlot{index: idx}
	}
	return s
}

// request counts one request (not a retry) towards the budget.
func (b *retryBudget) request() {
	idx := b.now().UnixNano() / b.slotWidth
	b.mu.Lock()
	b.slot(idx).requests++
	b.mu.Unlock()
}

// allow spends one retry if the window has room for it.
func (b *retryBudget) allow() bool {
	idx := b.now().UnixNano() / b.slotWidth
	b.mu.Lock()
	var requests, retries int64
	for i := range b.slots {
		if s := &b.slots[i]; s.index > idx-budgetSlots {
			requests += s.requests
			retries += s.retries
		}
	}
	ok := 100*(retries+1) <= requests*int64(b.cfg.Percent) || retries+1 <= b.floor
	if ok {
		b.slot(idx).retries++
	}
	b.mu.Unlock()
	if !ok && b.exhausted != nil {
		b.exhausted.Inc()
	}
	return ok
}

// spend asks the request's budget, if it has one, for the retry it is
// about to make.
func (rs *retryState) spend() bool {
	return rs.budget == nil || rs.budget.allow()
}
