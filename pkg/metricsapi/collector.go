package metricsapi

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nodemesh/nodemesh/pkg/edgestats"
)

// Collector scrapes every proxy's /metrics each Interval and keeps each
// proxy's samples for MaxWindow, so that Window can say what happened over
// the last w from the proxies' own counters: no Prometheus server.
//
// History is kept per proxy rather than summed, so that one proxy's
// restart (its counters back at zero) is seen as a reset of that proxy
// only, and a proxy that appears or leaves does not look like traffic.
type Collector struct {
	// Targets lists the proxies to scrape; it is called before each round.
	Targets func(ctx context.Context) ([]edgestats.Target, error)
	// Interval between scrape rounds.
	Interval time.Duration
	// MaxWindow is the longest window Window answers in full.
	MaxWindow time.Duration
	// Log receives scrape failures.
	Log *slog.Logger

	now     func() time.Time // tests
	mu      sync.Mutex
	proxies map[string]*history // by target name
}

type history struct {
	samples []sample // oldest first
}

type sample struct {
	at time.Time
	// started is the proxy process's start time (process_start_time_seconds),
	// zero when unknown.
	started time.Time
	edges   map[edgestats.Edge]*edgestats.Counts
}

// Run scrapes until ctx is done.
func (c *Collector) Run(ctx context.Context) {
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		c.Scrape(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Scrape runs one round over every target, in parallel.
func (c *Collector) Scrape(ctx context.Context) {
	targets, err := c.Targets(ctx)
	if err != nil {
		c.Log.Warn("listing proxies", "error", err)
		return
	}
	type result struct {
		name string
		s    sample
		ok   bool
	}
	results := make([]result, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, max(c.Interval, time.Second))
			defer cancel()
			body, err := t.Fetch(sctx)
			if err == nil {
				var s *sample
				if s, err = parse(t.Name, body); err == nil {
					s.at = c.clock()
					results[i] = result{t.Name, *s, true}
					return
				}
			}
			c.Log.Warn("scraping a proxy", "proxy", t.Name, "error", err)
		}()
	}
	wg.Wait()

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proxies == nil {
		c.proxies = map[string]*history{}
	}
	listed := make(map[string]bool, len(targets))
	for _, t := range targets {
		listed[t.Name] = true
	}
	for name := range c.proxies {
		if !listed[name] {
			delete(c.proxies, name) // the proxy pod is gone
		}
	}
	for _, r := range results {
		if !r.ok {
			continue
		}
		h := c.proxies[r.name]
		if h == nil {
			h = &history{}
			c.proxies[r.name] = h
		}
		h.samples = append(h.samples, r.s)
		h.prune(r.s.at.Add(-c.MaxWindow))
	}
}

// parse reads one proxy's metrics text.
func parse(name string, body []byte) (*sample, error) {
	s := edgestats.NewSample()
	if err := s.Add(name, bytes.NewReader(body)); err != nil {
		return nil, err
	}
	return &sample{started: startTime(body), edges: s.Edges}, nil
}

// startTime finds process_start_time_seconds in a metrics text.
func startTime(body []byte) time.Time {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_start_time_seconds "); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f > 0 {
				return time.Unix(0, int64(f*1e9))
			}
		}
	}
	return time.Time{}
}

// prune drops samples no window needs: the newest one at or before since
// stays, as the baseline of the longest window.
func (h *history) prune(since time.Time) {
	keep := 0
	for i, s := range h.samples {
		if !s.at.After(since) {
			keep = i
		}
	}
	h.samples = h.samples[keep:]
}

func (c *Collector) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// Window returns, per edge, what every proxy counted over the last w up to
// its latest scrape, summed, and the time of the newest scrape (zero when
// nothing was scraped yet). Per proxy the baseline is its newest sample at
// least w older than its latest; else, for a proxy that started within w,
// zero; else its oldest sample (the answer then covers less than w: the
// collector has not run that long).
func (c *Collector) Window(w time.Duration) (map[edgestats.Edge]*edgestats.Counts, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[edgestats.Edge]*edgestats.Counts{}
	var latest time.Time
	for _, h := range c.proxies {
		if len(h.samples) == 0 {
			continue
		}
		n := h.samples[len(h.samples)-1]
		if n.at.After(latest) {
			latest = n.at
		}
		from := n.at.Add(-w)
		var base map[edgestats.Edge]*edgestats.Counts
		switch {
		case !h.samples[0].at.After(from):
			for _, s := range h.samples {
				if !s.at.After(from) {
					base = s.edges
				}
			}
		case !n.started.IsZero() && !n.started.Before(from):
			base = nil // the proxy started within the window: all of it counts
		default:
			base = h.samples[0].edges
		}
		for e, cur := range n.edges {
			d := sub(cur, base[e])
			if acc := out[e]; acc != nil {
				add(acc, d)
			} else {
				out[e] = d
			}
		}
	}
	return out, latest
}

// sub returns cur - prev for one edge of one proxy; prev nil means zero.
// A counter that went down was reset (the proxy restarted, or the series
// was deleted and came back): its current value is all that happened.
func sub(cur, prev *edgestats.Counts) *edgestats.Counts {
	d := &edgestats.Counts{Requests: cur.Requests, Failures: cur.Failures, Buckets: append([]edgestats.Bucket(nil), cur.Buckets...)}
	if prev == nil || prev.Requests > cur.Requests || prev.Failures > cur.Failures {
		return d
	}
	d.Requests -= prev.Requests
	d.Failures -= prev.Failures
	for i := range d.Buckets {
		for _, pb := range prev.Buckets {
			if pb.UpperBound == d.Buckets[i].UpperBound {
				if pb.Count > d.Buckets[i].Count {
					d.Buckets = append(d.Buckets[:0], cur.Buckets...) // reset
					return d
				}
				d.Buckets[i].Count -= pb.Count
			}
		}
	}
	return d
}

// add adds d to acc (buckets by bound; proxies share their bounds, since
// they are compiled in).
func add(acc, d *edgestats.Counts) {
	acc.Requests += d.Requests
	acc.Failures += d.Failures
	for _, b := range d.Buckets {
		found := false
		for i := range acc.Buckets {
			if acc.Buckets[i].UpperBound == b.UpperBound {
				acc.Buckets[i].Count += b.Count
				found = true
				break
			}
		}
		if !found {
			acc.Buckets = append(acc.Buckets, b)
		}
	}
}
