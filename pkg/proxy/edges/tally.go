package edges

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Tally is the counter a stream data plane adds a connection's bytes (TCP)
// or a session's datagrams (UDP) to: it adds to the service's series, to
// the edge's, and to the connection's own count, for its access log entry.
// It stands in for the service's counter in the data plane's per-route
// metrics, so the copy loops need not know about edges.
type Tally struct {
	// Service is the service's counter; Edge the edge's, nil with edge
	// metrics off.
	Service, Edge prometheus.Counter
	n             atomic.Int64
}

// Add counts v.
func (t *Tally) Add(v float64) {
	t.Service.Add(v)
	if t.Edge != nil {
		t.Edge.Add(v)
	}
	t.n.Add(int64(v))
}

// Inc counts one.
func (t *Tally) Inc() { t.Add(1) }

// N is what this Tally counted.
func (t *Tally) N() int64 { return t.n.Load() }

// Desc is the service counter's: a Tally is never registered itself.
func (t *Tally) Desc() *prometheus.Desc { return t.Service.Desc() }

// Describe is the service counter's.
func (t *Tally) Describe(ch chan<- *prometheus.Desc) { t.Service.Describe(ch) }

// Collect is the service counter's.
func (t *Tally) Collect(ch chan<- prometheus.Metric) { t.Service.Collect(ch) }

// Write is the service counter's.
func (t *Tally) Write(m *dto.Metric) error { return t.Service.Write(m) }
