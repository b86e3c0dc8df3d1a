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
	next http.Handler
	d    time.Duration
	body string // the 504 body
}

// timeoutKey marks a request context whose deadline is the route's
// request timeout, so errorHandler can say so in the 504.
type timeoutKey struct{}

func newRequestTimeout(next http.Handler, d time.Duration, svc string) *requestTimeout {
	return &requestTimeout{next: next, d: d, body: "request timeout " + d.String() + " exceeded for " + svc + "\n"}
}

func (t *requestTimeout) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), t.d)
	defer cancel()
	t.next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, timeoutKey{}, t)))
}

// timeoutBody returns the 504 body of a request whose route timeout
// expired, "" otherwise.
func timeoutBody(r *http.Request) string {
	ctx := r.Context()
	if t, ok := ctx.Value(timeoutKey{}).(*requestTimeout); ok && ctx.Err() == context.DeadlineExceeded {
		return t.body
	}
	return ""
}
