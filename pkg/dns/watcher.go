package dns

import (
	"context"
	"errors"
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"
)

// WatcherOptions configure a Watcher. Zero values mean the defaults.
type WatcherOptions struct {
	// Patcher does the work; its client also feeds the ConfigMap informer.
	Patcher *Patcher
	// Interval between periodic checks. Default 5 minutes.
	Interval time.Duration
	// MinDelay and MaxDelay bound the backoff after an error, and after
	// drift repairs that follow each other (another writer fighting over the
	// Corefile, such as a managed add-on): each repair in a row doubles the
	// wait before acting on the next ConfigMap event. Defaults 1s and 5m.
	MinDelay, MaxDelay time.Duration
	// OnEvent, when set, is called after every run, from the Watcher's
	// goroutine; the controller turns drift into an Event and a status.
	OnEvent func(Event)
}

// Event is the outcome of one run of the Watcher.
type Event struct {
	// Time the run ended.
	Time time.Time
	// Result of Patcher.Reconcile.
	Result Result
	// Err is the run's error; the run is retried with backoff.
	Err error
	// Drift is true when the run repaired a configuration that had been
	// patched before and changed since: a change after the first successful
	// run, unless SetExactRules changed the rules since the last successful
	// run (writing new rules is not drift; a repair in the same run as new
	// rules is then not counted).
	Drift bool
}

// Status is the Watcher's summary for the controller's status API.
type Status struct {
	// Patched is true once a run succeeded.
	Patched bool `json:"patched"`
	// Provider is the DNS server found by the last run.
	Provider Provider `json:"provider,omitempty"`
	// LastRun is when the last run ended; LastError its error, or "".
	LastRun   time.Time `json:"lastRun"`
	LastError string    `json:"lastError,omitempty"`
	// Drifts counts repairs since start; LastDrift is the latest.
	Drifts    int       `json:"drifts"`
	LastDrift time.Time `json:"lastDrift,omitzero"`
}

// Watcher keeps the DNS patch in place: it runs Patcher.Reconcile at start,
// every Interval, on every change to a ConfigMap the last run read (see
// nameWatches), and on Notify.
type Watcher struct {
	o     WatcherOptions
	queue workqueue.TypedRateLimitingInterface[string]

	mu     sync.Mutex
	status Status
	// rulesGen is the Patcher's rules generation at the last successful run.
	rulesGen uint64
}

// queueKey is the only item of the queue: every trigger asks for the same
// whole-cluster check, so triggers that pile up run once.
const queueKey = "dns"

// NewWatcher returns a Watcher; Run starts it.
func NewWatcher(o WatcherOptions) *Watcher {
	if o.Interval <= 0 {
		o.Interval = 5 * time.Minute
	}
	if o.MinDelay <= 0 {
		o.MinDelay = time.Second
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 5 * time.Minute
	}
	limiter := workqueue.NewTypedItemExponentialFailureRateLimiter[string](o.MinDelay, o.MaxDelay)
	return &Watcher{
		o:     o,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(limiter, workqueue.TypedRateLimitingQueueConfig[string]{Name: "nodemesh_dns"}),
	}
}

// Notify asks for a check as soon as the backoff allows.
func (w *Watcher) Notify() { w.queue.AddRateLimited(queueKey) }

// Status returns a copy of the current status.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

// Run works until ctx ends and returns nil then; an error means it could not
// start.
func (w *Watcher) Run(ctx context.Context) error {
	if w.o.Patcher == nil {
		return errors.New("dns: WatcherOptions.Patcher is nil")
	}
	defer w.queue.ShutDown()
	names := newNameWatches(w.o.Patcher, w.Notify)
	defer names.shutdown()

	w.queue.Add(queueKey) // the first run does not wait for the informer
	go func() {
		t := time.NewTicker(w.o.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				w.queue.ShutDown()
				return
			case <-t.C:
				w.queue.Add(queueKey)
			}
		}
	}()
	for w.processNext(ctx) {
		names.update(ctx.Done())
	}
	return nil
}

// processNext runs one check. It keeps the backoff after an error or a
// repair, and resets it after a run that found everything in place.
func (w *Watcher) processNext(ctx context.Context) bool {
	key, quit := w.queue.Get()
	if quit {
		return false
	}
	defer w.queue.Done(key)
	gen := w.o.Patcher.rulesGeneration()
	res, err := w.o.Patcher.Reconcile(ctx)
	if ctx.Err() != nil {
		return false
	}
	ev := Event{Time: time.Now(), Result: res, Err: err}
	w.mu.Lock()
	w.status.LastRun, w.status.LastError = ev.Time, ""
	if err != nil {
		w.status.LastError = err.Error()
	} else {
		ev.Drift = res.Changed && w.status.Patched && gen == w.rulesGen
		w.status.Patched, w.status.Provider, w.rulesGen = true, res.Provider, gen
		if ev.Drift {
			w.status.Drifts++
			w.status.LastDrift = ev.Time
		}
	}
	w.mu.Unlock()
	switch {
	case err != nil:
		w.queue.AddRateLimited(key)
	case !res.Changed:
		w.queue.Forget(key)
	}
	if w.o.OnEvent != nil {
		w.o.OnEvent(ev)
	}
	return true
}
