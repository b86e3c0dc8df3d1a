package httpproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vulcand/oxy/v2/buffer"

	"github.com/nodemesh/nodemesh/pkg/proxy/balance"
)

// statusRetry is the status errorHandler writes into oxy's buffer when an
// attempt failed in a way that may be retried. oxy's retry predicate only
// sees the status code, and a backend's own 502 must not be retried, so the
// proxy marks its own retryable failures with a code no backend sends. It
// never reaches a client: it is written only while attempts remain, and
// oxy then discards the attempt's response.
const statusRetry = 597

// retrier retries a request on network errors with oxy's buffer, which
// holds the request body so it can be replayed. A request whose body it
// cannot hold in memory (unknown length, or larger than the limit) and an
// Upgrade request go straight to next, unbuffered and never retried: an
// unbuffered body cannot be replayed.
type retrier struct {
	buffered http.Handler
	direct   http.Handler
	attempts int
	maxBody  int64
	budget   *retryBudget // nil: retries are not budgeted
}

func newRetrier(next http.Handler, attempts int, maxBody int64, retries prometheus.Counter, budget *retryBudget) (*retrier, error) {
	b, err := buffer.New(&attemptCounter{next: next, retries: retries},
		buffer.Retry(fmt.Sprintf("ResponseCode() == %d", statusRetry)),
		buffer.MemRequestBodyBytes(maxBody),
		buffer.MaxRequestBodyBytes(maxBody),
	)
	if err != nil {
		return nil, err
	}
	return &retrier{buffered: b, direct: next, attempts: attempts, maxBody: maxBody, budget: budget}, nil
}

func (rt *retrier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rt.budget != nil {
		rt.budget.request()
	}
	if r.ContentLength < 0 || r.ContentLength > rt.maxBody || r.Header.Get("Upgrade") != "" {
		rt.direct.ServeHTTP(w, r)
		return
	}
	rs := &retryState{max: rt.attempts, budget: rt.budget}
	rt.buffered.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), retryKey{}, rs)))
	if m := markOf(w, r); m != nil && rs.attempt > 1 {
		m.retries = rs.attempt - 1 // for the access log
	}
}

type retryKey struct{}

// retryState counts the attempts of one request.
type retryState struct {
	attempt, max int
	// budget, when set, must allow each retry (retrybudget.go).
	budget *retryBudget
	// tried lists the endpoints already tried, on routes that balance
	// with a policy (balanced.go): a retry goes elsewhere when it can.
	tried []*balance.Endpoint
}

func retryStateFrom(ctx context.Context) *retryState {
	rs, _ := ctx.Value(retryKey{}).(*retryState)
	return rs
}

// shouldRetry decides whether a failed attempt is tried again. A failed
// connect never reached a backend, so it is retried whatever the method. A
// failure after the request was sent is retried only for a request that is
// safe to repeat (the rule net/http's own transport uses): the backend may
// have acted on a POST before the connection broke. A timeout is not
// retried: the backend may still be working, and retrying multiplies the
// wait.
func (rs *retryState) shouldRetry(r *http.Request, err error) bool {
	if rs.attempt >= rs.max || r.Context().Err() != nil {
		return false
	}
	if isDialError(err) {
		return rs.spend()
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return false
	}
	return replayable(r) && rs.spend()
}

// replayable mirrors net/http's rule for requests it may send twice.
func replayable(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, key := r.Header["Idempotency-Key"]
	_, xkey := r.Header["X-Idempotency-Key"]
	return key || xkey
}

// attemptCounter sits inside oxy's buffer and counts each attempt.
//
// It also works around an oxy buffer flaw: a response with no body bytes
// and no "Content-Length: 0" (a 204-less empty answer, our own retry
// marker) leaves oxy's response buffer unread-able and oxy answers 500. An
// empty write after each attempt makes the buffer readable.
type attemptCounter struct {
	next    http.Handler
	retries prometheus.Counter
}

func (a *attemptCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rs := retryStateFrom(r.Context()); rs != nil {
		rs.attempt++
		if rs.attempt > 1 {
			a.retries.Inc()
		}
	}
	a.next.ServeHTTP(w, r)
	_, _ = w.Write(nil)
}
