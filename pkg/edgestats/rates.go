package edgestats

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// Stat is one edge's traffic over an interval between two samples.
type Stat struct {
	Edge
	// Requests answered in the interval.
	Requests float64 `json:"requests"`
	// RPS is Requests per second.
	RPS float64 `json:"rps"`
	// Success is the share of requests not answered 5xx (0-1); NaN-free:
	// an edge without requests in the interval has HasTraffic false.
	Success float64 `json:"success"`
	// P50 and P99 are latency quantiles in seconds, interpolated in the
	// histogram buckets as Prometheus's histogram_quantile does.
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	// HasTraffic is false when the edge had no request in the interval.
	HasTraffic bool `json:"hasTraffic"`
}

// Rates compares two samples taken interval apart and returns one Stat per
// edge of cur, sorted by destination, source then backend. An edge absent
// from prev counts from zero (it appeared in between). A counter that went
// down (a proxy restarted) counts from zero too, as Prometheus's rate does.
func Rates(prev, cur *Sample, interval time.Duration) []Stat {
	secs := interval.Seconds()
	out := make([]Stat, 0, len(cur.Edges))
	for e, c := range cur.Edges {
		var p *Counts
		if prev != nil {
			p = prev.Edges[e]
		}
		if p == nil {
			p = &Counts{}
		}
		reqs := delta(c.Requests, p.Requests)
		fails := delta(c.Failures, p.Failures)
		if c.Requests < p.Requests {
			fails = c.Failures
		}
		st := Stat{Edge: e, Requests: reqs, HasTraffic: reqs > 0}
		if secs > 0 {
			st.RPS = reqs / secs
		}
		if reqs > 0 {
			st.Success = (reqs - min(fails, reqs)) / reqs
		}
		buckets := deltaBuckets(c.Buckets, p.Buckets)
		st.P50 = Quantile(0.5, buckets)
		st.P99 = Quantile(0.99, buckets)
		out = append(out, st)
	}
	SortBy(out, "")
	return out
}

func delta(cur, prev float64) float64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// deltaBuckets subtracts prev's cumulative buckets from cur's, bound by
// bound; a reset (any bucket lower than before) keeps cur whole.
func deltaBuckets(cur, prev []Bucket) []Bucket {
	out := make([]Bucket, len(cur))
	for i, b := range cur {
		out[i] = b
		for _, pb := range prev {
			if pb.UpperBound == b.UpperBound {
				if pb.Count > b.Count {
					return slices.Clone(cur)
				}
				out[i].Count = b.Count - pb.Count
			}
		}
	}
	return out
}

// Quantile returns the q-quantile (0-1) of cumulative buckets sorted by
// bound with +Inf last, interpolating linearly inside the bucket that holds
// it. It returns 0 for an empty histogram, and the largest finite bound when
// the quantile lies in the +Inf bucket.
func Quantile(q float64, buckets []Bucket) float64 {
	if len(buckets) == 0 {
		return 0
	}
	total := buckets[len(buckets)-1].Count
	if total <= 0 {
		return 0
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range buckets {
		if b.Count >= rank {
			if math.IsInf(b.UpperBound, 1) {
				return lower
			}
			inBucket := b.Count - below
			if inBucket <= 0 {
				return b.UpperBound
			}
			return lower + (b.UpperBound-lower)*(rank-below)/inBucket
		}
		lower, below = b.UpperBound, b.Count
	}
	return lower
}

// Sort keys for SortBy.
const (
	SortRPS     = "rps"
	SortSuccess = "success"
	SortP99     = "p99"
)

// SortBy orders stats: "rps" (busiest first), "success" (worst first),
// "p99" (slowest first), else by destination, source and backend. Ties keep
// that name order, so the output never depends on map order.
func SortBy(stats []Stat, key string) {
	byName := func(a, b Stat) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Service, b.Service),
			cmp.Compare(a.SourceNamespace, b.SourceNamespace), cmp.Compare(a.SourceWorkload, b.SourceWorkload),
			cmp.Compare(a.Backend, b.Backend))
	}
	slices.SortFunc(stats, func(a, b Stat) int {
		var c int
		switch key {
		case SortRPS:
			c = cmp.Compare(b.RPS, a.RPS)
		case SortSuccess:
			// Edges without traffic have no success rate: they go last.
			c = cmp.Or(cmp.Compare(boolInt(b.HasTraffic), boolInt(a.HasTraffic)), cmp.Compare(a.Success, b.Success))
		case SortP99:
			c = cmp.Compare(b.P99, a.P99)
		}
		return cmp.Or(c, byName(a, b))
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ByDestination merges the stats of one destination's edges per backend:
// requests answered by each backend of namespace/service in the interval.
// It is what `status` shows as observed split weights.
func ByDestination(stats []Stat, namespace, service string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range stats {
		if s.Namespace == namespace && s.Service == service && s.Backend != "" {
			out[s.Backend] += s.Requests
		}
	}
	return out
}
