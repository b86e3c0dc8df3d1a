package httpproxy

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// durationBuckets suit in-cluster calls: most answer within milliseconds,
// and anything past 10 s is an outlier to see, not to resolve.
var durationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// metrics are the HTTP data plane's Prometheus metrics.
type metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	retries     *prometheus.CounterVec
	unknownHost prometheus.Counter
	edges       *edgeMetrics // nil: no edge metrics and no access log
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodemesh_proxy_http_requests_total",
			Help: "HTTP requests answered, by destination service, method and status code.",
		}, []string{"namespace", "service", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nodemesh_proxy_http_request_duration_seconds",
			Help:    "Time from request received to handler done (response fully written), by destination service.",
			Buckets: durationBuckets,
		}, []string{"namespace", "service"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodemesh_proxy_http_retries_total",
			Help: "Extra attempts made after a network error, by destination service.",
		}, []string{"namespace", "service"}),
		unknownHost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nodemesh_proxy_http_unknown_host_requests_total",
			Help: "HTTP requests whose Host matched no route (answered 404).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.retries, m.unknownHost)
	}
	return m
}

// forget drops the series of a service that left the table.
func (m *metrics) forget(s table.ServiceRef) {
	l := prometheus.Labels{"namespace": s.Namespace, "service": s.Name}
	m.requests.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.retries.DeletePartialMatch(l)
}

// methods is the bounded set of method label values; anything else is
// counted as OTHER so a client cannot grow the series without bound.
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER"}

func methodIndex(m string) uint32 {
	for i, name := range methods[:len(methods)-1] {
		if m == name {
			return uint32(i)
		}
	}
	return uint32(len(methods) - 1)
}

// routeMetrics are one service's pre-resolved series, so the hot path does
// no label hashing: the histogram and each (method, code) counter are
// looked up once, on first sight. A service that takes no traffic through
// this proxy has no series: with 1,000 services in the table, their idle
// histograms were 15,000 of /metrics' 17,000 lines (1.8 MB a scrape) and
// 1.7 MB of the heap every collection marks.
type routeMetrics struct {
	m        *metrics
	svc      table.ServiceRef
	duration atomic.Pointer[observer]
	counters atomic.Pointer[[]codeCounter] // copy on write; read without locks
	mu       sync.Mutex
	edge     *edgeService // edge metrics and access log; nil when off
}

type codeCounter struct {
	key uint32 // method index << 16 | status code
	c   prometheus.Counter
}

type observer struct{ prometheus.Observer }

func newRouteMetrics(m *metrics, svc table.ServiceRef) *routeMetrics {
	return &routeMetrics{m: m, svc: svc, edge: m.edges.forService(svc)}
}

// observe records a request's duration in the service's histogram.
func (rm *routeMetrics) observe(seconds float64) {
	o := rm.duration.Load()
	if o == nil {
		// Two first requests at once both look it up: WithLabelValues
		// gives both the same child.
		o = &observer{rm.m.duration.WithLabelValues(rm.svc.Namespace, rm.svc.Name)}
		rm.duration.Store(o)
	}
	o.Observe(seconds)
}

func (rm *routeMetrics) counter(method string, code int) prometheus.Counter {
	key := methodIndex(method)<<16 | uint32(code)&0xffff
	if p := rm.counters.Load(); p != nil {
		for _, c := range *p {
			if c.key == key {
				return c.c
			}
		}
	}
	rm.mu.Lock()
	defer rm.mu.Unlock()
	var cur []codeCounter
	if p := rm.counters.Load(); p != nil {
		cur = *p
		for _, c := range cur {
			if c.key == key {
				return c.c
			}
		}
	}
	c := rm.m.requests.WithLabelValues(rm.svc.Namespace, rm.svc.Name, methods[key>>16], strconv.Itoa(code))
	next := append(append(make([]codeCounter, 0, len(cur)+1), cur...), codeCounter{key, c})
	rm.counters.Store(&next)
	return c
}

// instrument wraps next so every request is counted and timed.
func (rm *routeMetrics) instrument(next http.Handler) http.Handler {
	carry := rm.carries(next) // edgerequest.go
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := getStatusWriter(w)
		r, mark := sw.markFor(r, carry)
		next.ServeHTTP(sw, r)
		code := sw.status()
		d := time.Since(start)
		rm.counter(r.Method, code).Inc()
		rm.observe(d.Seconds())
		rm.edge.done(r, mark, code, sw.bytes, start, d)
		putStatusWriter(sw)
	})
}

// statusWriter records the status code written through it. It is pooled:
// one per request would be the chain's largest allocation.
type statusWriter struct {
	w        http.ResponseWriter
	code     int
	hijacked bool
	bytes    int64    // body bytes written
	top      bool     // the route instrument's own writer: mark is in use
	mark     edgeMark // see edgerequest.go
}

var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

func getStatusWriter(w http.ResponseWriter) *statusWriter {
	sw := statusWriters.Get().(*statusWriter)
	sw.w = w
	return sw
}

func putStatusWriter(sw *statusWriter) {
	*sw = statusWriter{}
	statusWriters.Put(sw)
}

func (sw *statusWriter) status() int {
	switch {
	case sw.hijacked:
		return http.StatusSwitchingProtocols
	case sw.code == 0:
		return http.StatusOK
	}
	return sw.code
}

// Header returns the response header.
func (sw *statusWriter) Header() http.Header { return sw.w.Header() }

// WriteHeader records the first final status code and passes it on.
func (sw *statusWriter) WriteHeader(code int) {
	if sw.code == 0 && code >= 200 || code == http.StatusSwitchingProtocols {
		sw.code = code
	}
	sw.w.WriteHeader(code)
}

// Write passes the body on; the status is 200 if none was written.
func (sw *statusWriter) Write(b []byte) (int, error) {
	if sw.code == 0 {
		sw.code = http.StatusOK
	}
	n, err := sw.w.Write(b)
	sw.bytes += int64(n)
	return n, err
}

// Flush passes a flush on: streaming responses must not wait.
func (sw *statusWriter) Flush() {
	flushNow(sw.w)
}

// Hijack hands the connection over for an Upgrade (WebSocket).
func (sw *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(sw.w).Hijack()
	if err == nil {
		sw.hijacked = true
	}
	return c, rw, err
}

// Unwrap lets http.ResponseController reach the server's writer.
func (sw *statusWriter) Unwrap() http.ResponseWriter { return sw.w }
