package httpproxy

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// HeaderFault marks a response the proxy made up by fault injection, so
// that a resilience test can tell injected failures from real ones.
const HeaderFault = "X-Nodemesh-Fault"

// faultInjector delays and aborts a share of requests (table
// Middleware.Faults). It is a test tool, off unless asked for, and the
// outermost policy of a route: an aborted request never reaches a backend,
// a rate limit or the outlier detection, and a delay does not count
// against the request timeout.
type faultInjector struct {
	next                   http.Handler
	abortPct, delayPct     float64
	status                 int
	delay                  time.Duration
	body                   string
	abortCount, delayCount prometheus.Counter
}

func newFaultInjector(next http.Handler, f *table.Faults, svc string, pm *servicePolicyMetrics) *faultInjector {
	fi := &faultInjector{
		next: next, abortPct: f.AbortPercent, delayPct: f.DelayPercent,
		status: f.AbortStatus, delay: f.Delay.D(),
		body: "fault injected: abort with " + strconv.Itoa(f.AbortStatus) + " for " + svc + "\n",
	}
	// Only the series of the faults the route injects.
	if fi.abortPct > 0 {
		fi.abortCount = pm.faultAbort()
	}
	if fi.delayPct > 0 {
		fi.delayCount = pm.faultDelay()
	}
	return fi
}

// chance draws true with probability pct/100.
func chance(pct float64) bool { return pct > 0 && rand.Float64()*100 < pct }

func (f *faultInjector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if chance(f.delayPct) {
		f.delayCount.Inc()
		t := time.NewTimer(f.delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			w.WriteHeader(StatusClientClosedRequest) // nobody reads it; metrics do
			return
		}
	}
	if chance(f.abortPct) {
		f.abortCount.Inc()
		w.Header().Set(HeaderFault, "abort")
		plain(w, f.status, f.body)
		return
	}
	f.next.ServeHTTP(w, r)
}
