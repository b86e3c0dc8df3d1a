// Package edgestats turns the node proxies' Prometheus metrics into
// per-edge traffic figures: requests per second, success rate and latency
// quantiles from one source workload to one destination service (and the
// split backend that served it). `nodemesh top`, `nodemesh status` and the
// dashboard read their live numbers from here.
//
// Two scrapes of the same proxies make a rate: counters and histogram
// buckets are subtracted, so the figures describe the interval between the
// scrapes, not the proxies' lifetime.
//
// When a proxy serves the edge series (nodemesh_proxy_edge_http_*, with
// source and backend labels) they are used. Otherwise the per-service
// series (nodemesh_proxy_http_*) give one edge per destination with an
// unknown source and no backend, so `top` still works against proxies that
// run without edge metrics.
package edgestats

import (
	"fmt"
	"io"
	"math"
	"strconv"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metric names read from the proxies (docs/proxy.md, docs/observability.md).
const (
	EdgeRequests    = "nodemesh_proxy_edge_http_requests_total"
	EdgeDuration    = "nodemesh_proxy_edge_http_request_duration_seconds"
	ServiceRequests = "nodemesh_proxy_http_requests_total"
	ServiceDuration = "nodemesh_proxy_http_request_duration_seconds"
	TableVersion    = "nodemesh_proxy_table_version"
)

// Unknown is the source of a request whose client the proxy could not name,
// and of every request counted by the per-service series.
const Unknown = "unknown"

// Edge is one source workload calling one destination service. Backend is
// the split backend that served the request ("" when the metrics do not
// say, "none" when no backend was reached).
type Edge struct {
	SourceNamespace string `json:"sourceNamespace"`
	SourceWorkload  string `json:"sourceWorkload"`
	Namespace       string `json:"namespace"`
	Service         string `json:"service"`
	Backend         string `json:"backend,omitempty"`
}

// Source renders the source as "namespace/workload", or "unknown".
func (e Edge) Source() string {
	if e.SourceNamespace == Unknown || e.SourceNamespace == "" {
		return Unknown
	}
	return e.SourceNamespace + "/" + e.SourceWorkload
}

// Destination renders the destination as "namespace/service".
func (e Edge) Destination() string { return e.Namespace + "/" + e.Service }

// Counts are cumulative counters of one edge as scraped.
type Counts struct {
	// Requests and Failures (5xx answers) since the proxy started.
	Requests, Failures float64
	// Buckets is the latency histogram: cumulative counts by upper bound,
	// sorted by bound, the last one +Inf.
	Buckets []Bucket
}

// Bucket is one cumulative histogram bucket.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// Sample is one scrape of one or more proxies, summed per edge.
type Sample struct {
	Edges map[Edge]*Counts
	// EdgeSeries is true when every proxy served the edge series (with
	// sources and backends); false when some only had per-service series.
	EdgeSeries bool
	// Versions are the table versions the proxies served, by proxy.
	Versions map[string]uint64
	// Proxies counts the proxies read.
	Proxies int
}

// NewSample returns an empty Sample.
func NewSample() *Sample {
	return &Sample{Edges: map[Edge]*Counts{}, EdgeSeries: true, Versions: map[string]uint64{}}
}

// Add parses one proxy's /metrics text and adds its counts to s.
func (s *Sample) Add(proxy string, r io.Reader) error {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return fmt.Errorf("proxy %s metrics: %w", proxy, err)
	}
	s.Proxies++
	if f := fams[TableVersion]; f != nil && len(f.Metric) > 0 && f.Metric[0].Gauge != nil {
		s.Versions[proxy] = uint64(f.Metric[0].Gauge.GetValue())
	}
	reqs, dur, edgeSeries := fams[EdgeRequests], fams[EdgeDuration], true
	if reqs == nil {
		reqs, dur, edgeSeries = fams[ServiceRequests], fams[ServiceDuration], false
	}
	s.EdgeSeries = s.EdgeSeries && edgeSeries
	for _, m := range metrics(reqs) {
		c := s.counts(edgeOf(m, edgeSeries))
		v := m.GetCounter().GetValue()
		c.Requests += v
		if failed(m, edgeSeries) {
			c.Failures += v
		}
	}
	for _, m := range metrics(dur) {
		h := m.GetHistogram()
		if h == nil {
			continue
		}
		c := s.counts(edgeOf(m, edgeSeries))
		c.Buckets = addBuckets(c.Buckets, h)
	}
	return nil
}

func (s *Sample) counts(e Edge) *Counts {
	c := s.Edges[e]
	if c == nil {
		c = &Counts{}
		s.Edges[e] = c
	}
	return c
}

func metrics(f *dto.MetricFamily) []*dto.Metric {
	if f == nil {
		return nil
	}
	return f.Metric
}

func labelsOf(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.Label))
	for _, l := range m.Label {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// edgeOf reads the edge from a series' labels. Per-service series have no
// source: the requests count as from Unknown, with no backend.
func edgeOf(m *dto.Metric, edgeSeries bool) Edge {
	l := labelsOf(m)
	e := Edge{Namespace: l["namespace"], Service: l["service"]}
	if !edgeSeries {
		e.SourceNamespace, e.SourceWorkload = Unknown, Unknown
		return e
	}
	e.SourceNamespace, e.SourceWorkload, e.Backend = l["source_namespace"], l["source_workload"], l["backend"]
	return e
}

// failed reports whether a counter series counts failures: a 5xx class
// (edge series) or a 5xx code (per-service series). 4xx are the client's
// doing and count as answered, as Linkerd's success rate does.
func failed(m *dto.Metric, edgeSeries bool) bool {
	l := labelsOf(m)
	if edgeSeries {
		return l["code_class"] == "5xx"
	}
	code, err := strconv.Atoi(l["code"])
	return err == nil && code >= 500
}

// addBuckets adds h's cumulative buckets to acc (same bounds on every
// proxy, since they are compiled in; an unknown bound is inserted).
func addBuckets(acc []Bucket, h *dto.Histogram) []Bucket {
	for _, b := range h.Bucket {
		if !math.IsInf(b.GetUpperBound(), 1) { // the count below is the same
			acc = addBucket(acc, b.GetUpperBound(), float64(b.GetCumulativeCount()))
		}
	}
	return addBucket(acc, math.Inf(1), float64(h.GetSampleCount()))
}

func addBucket(acc []Bucket, bound, count float64) []Bucket {
	for i := range acc {
		if acc[i].UpperBound == bound {
			acc[i].Count += count
			return acc
		}
		if acc[i].UpperBound > bound {
			acc = append(acc[:i], append([]Bucket{{bound, count}}, acc[i:]...)...)
			return acc
		}
	}
	return append(acc, Bucket{bound, count})
}
