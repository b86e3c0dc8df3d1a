package httpproxy

import (
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// maxRequests caps the requests of a route in flight on this proxy (table
// Middleware.MaxRequests); one over the cap gets 503 at once.
//
// oxy's connlimit does the same per source but keeps its count inside the
// handler, which a reload rebuilds whenever an endpoint of the route
// changes: every rollout would reset the count and briefly let twice the
// limit through. Here the count is an atomic shared by every version of
// the route (routePolicy.inflight), and costs no lock or map per request.
type maxRequests struct {
	next     http.Handler
	max      int64
	inflight *atomic.Int64
	body     string
	rejected prometheus.Counter
}

// newMaxRequests wraps next; rejected resolves the rejection counter (once,
// here, so only routes with the limit have the series).
func newMaxRequests(next http.Handler, max int, inflight *atomic.Int64, svc string, rejected func() prometheus.Counter) *maxRequests {
	return &maxRequests{
		next: next, max: int64(max), inflight: inflight, rejected: rejected(),
		body: "too many requests in flight for " + svc + " (max-requests " + strconv.Itoa(max) + ")\n",
	}
}

func (m *maxRequests) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if m.inflight.Add(1) > m.max {
		m.inflight.Add(-1)
		m.rejected.Inc()
		plain(w, http.StatusServiceUnavailable, m.body)
		return
	}
	defer m.inflight.Add(-1)
	m.next.ServeHTTP(w, r)
}
