package httpproxy

import (
	"context"
	"net/http"
	"time"
)

// requestTimeout bounds a whole request, retries included (table
// Middleware.RequestTimeout): when it expires the forwarder's transport
// gives up and the client gets 504 naming the timeout. It sits inside the
// circuit breaker and outside the retrier, so one deadline covers every
// attempt; injected fault delays come before it and do not count.
//
// The deadline covers the response body too, as Envoy's route timeout
// does: a response still streaming when it expires is cut. Streaming
// services should not set one.
type requestTimeout struct {
	next  http.Handler
	d     time.Duration
	cause *timeoutCause // the context's cause when the deadline passes
}

// timeoutCause is the cause of a request context whose deadline was the
// route's request timeout, so errorHandler can say so in the 504. Carrying
// it as the context's cause (context.WithTimeoutCause) costs no extra
// allocation per request, where a context value would.
type timeoutCause struct{ body string }

func (c *timeoutCause) Error() string { return c.body }

// Unwrap makes the cause a deadline error: net/http hands the cause back as
// the round trip's error, and errorStatus answers 504 to a deadline.
func (c *timeoutCause) Unwrap() error { return context.DeadlineExceeded }

func newRequestTimeout(next http.Handler, d time.Duration, svc string) *requestTimeout {
	return &requestTimeout{next: next, d: d, cause: &timeoutCause{body: "request timeout " + d.String() + " exceeded for " + svc + "\n"}}
}

func (t *requestTimeout) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeoutCause(r.Context(), t.d, t.cause)
	defer cancel()
	t.next.ServeHTTP(w, r.WithContext(ctx))
}

// timeoutBody returns the 504 body of a request whose route timeout
// expired, "" otherwise.
func timeoutBody(r *http.Request) string {
	if c, ok := context.Cause(r.Context()).(*timeoutCause); ok {
		return c.body
	}
	return ""
}
