// Package accesslog writes the node proxy's optional access log: one JSON
// object per line for each HTTP request, TCP connection and UDP session
// (issue 9, docs/observability.md).
//
// The log must never slow the data plane noticeably, so:
//
//   - the decision to log an entry is one or two atomic operations (Allow):
//     a sampling ratio, then a cap on entries per second; what is not
//     sampled costs nothing more;
//   - an allowed entry is a plain struct handed to a buffered channel
//     without blocking; a single writer goroutine encodes and writes it. A
//     full queue drops the entry and counts it, so a slow disk throttles
//     the log, never the traffic.
package accesslog

import (
	"bufio"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for zero Options fields.
const (
	DefaultQueueSize = 4096
)

// Options configures a Logger.
type Options struct {
	// Writer receives the JSON lines; it is written by one goroutine only.
	Writer io.Writer
	// SampleRatio is the share of entries considered, from 0 (exclusive)
	// to 1; 0 or anything above 1 means 1 (every entry). Sampling is every
	// n-th entry, n = round(1/SampleRatio), so it needs no random number.
	SampleRatio float64
	// MaxPerSecond caps the entries written per second after sampling;
	// 0 means no cap.
	MaxPerSecond int
	// QueueSize is how many entries may wait for the writer; zero means
	// DefaultQueueSize.
	QueueSize int
	// Registerer receives nodemesh_proxy_access_log_* counters; nil means
	// none.
	Registerer prometheus.Registerer
	// manualReset leaves the per-second reset to the test.
	manualReset bool
}

// Logger is an access log. A nil *Logger logs nothing and Allow is false,
// so data planes test it once per request.
type Logger struct {
	every uint64
	max   int64
	n     atomic.Uint64 // entries offered, for sampling
	inSec atomic.Int64  // entries allowed this second; a ticker resets it
	queue chan Entry
	done  chan struct{}
	once  sync.Once
	// closing guards queue against a send after Close: a request that
	// outlived the server's shutdown must not panic the proxy.
	closing sync.RWMutex
	closed  bool
	out     *bufio.Writer
	written prometheus.Counter
	dropped *prometheus.CounterVec
	// overRate and queueFull are dropped's two children.
	overRate, queueFull prometheus.Counter
}

// New starts a Logger and its writer goroutine; Close stops it.
func New(opts Options) *Logger {
	every := uint64(1)
	if r := opts.SampleRatio; r > 0 && r < 1 {
		every = uint64(1/r + 0.5)
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	l := &Logger{
		every: every,
		max:   int64(opts.MaxPerSecond),
		queue: make(chan Entry, opts.QueueSize),
		done:  make(chan struct{}),
		out:   bufio.NewWriterSize(opts.Writer, 64<<10),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nodemesh_proxy_access_log_entries_total",
			Help: "Access log entries written.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodemesh_proxy_access_log_dropped_total",
			Help: "Access log entries not written, by reason: rate_limit (over max-per-second) or queue_full (the writer fell behind).",
		}, []string{"reason"}),
	}
	l.overRate = l.dropped.WithLabelValues("rate_limit")
	l.queueFull = l.dropped.WithLabelValues("queue_full")
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(l.written, l.dropped)
	}
	go l.run()
	if l.max > 0 && !opts.manualReset {
		go l.resetEverySecond()
	}
	return l
}

// resetEverySecond opens a new second's budget of entries. A ticker rather
// than a clock read in Allow: reading the clock on every request costs
// more than the rest of Allow.
func (l *Logger) resetEverySecond() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
			l.inSec.Store(0)
		}
	}
}

// Allow reports whether the entry about to be built should be logged:
// sampled in, and within the per-second cap. Call it once per request,
// connection or session, before building the Entry.
func (l *Logger) Allow() bool {
	if l == nil {
		return false
	}
	if l.every > 1 && l.n.Add(1)%l.every != 0 {
		return false
	}
	if l.max <= 0 {
		return true
	}
	if l.inSec.Add(1) > l.max {
		l.overRate.Inc()
		return false
	}
	return true
}

// Log queues e for writing; it never blocks. Call it only after Allow.
func (l *Logger) Log(e *Entry) {
	l.closing.RLock()
	defer l.closing.RUnlock()
	if l.closed {
		return
	}
	select {
	case l.queue <- *e:
	default:
		l.queueFull.Inc()
	}
}

// Close writes what is queued and stops the writer.
func (l *Logger) Close() error {
	if l == nil {
		return nil
	}
	l.once.Do(func() {
		l.closing.Lock()
		l.closed = true
		close(l.queue)
		l.closing.Unlock()
	})
	<-l.done
	return nil
}

func (l *Logger) run() {
	defer close(l.done)
	buf := make([]byte, 0, 1024)
	for e := range l.queue {
		buf = e.AppendJSON(buf[:0])
		buf = append(buf, '\n')
		_, _ = l.out.Write(buf)
		l.written.Inc()
		// Flush when nothing else waits, so a quiet proxy's log is not
		// held back in the buffer.
		if len(l.queue) == 0 {
			_ = l.out.Flush()
		}
	}
	_ = l.out.Flush()
}
