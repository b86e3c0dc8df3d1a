// Package top is `nodemesh top`: a live view of the mesh's edges (source
// workload → destination service), refreshed every interval, with requests
// per second, success rate and p50/p99 latency computed from the node
// proxies' metrics between two scrapes (pkg/edgestats).
//
// On a terminal each frame replaces the previous one; otherwise frames are
// printed one after the other as plain tables, for scripts and tests.
package top

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nodemesh/nodemesh/pkg/edgestats"
)

// Options configure Run.
type Options struct {
	// Targets lists the proxies to scrape; it is called for every frame,
	// so proxies that come and go are followed.
	Targets func(ctx context.Context) ([]edgestats.Target, error)
	// Interval between scrapes; 0 means one second.
	Interval time.Duration
	// Sort is "rps", "success" or "p99" (see edgestats.SortBy).
	Sort string
	// Namespace keeps the edges whose source or destination is in it; ""
	// keeps all.
	Namespace string
	// Frames is how many frames to print; 0 means until ctx ends.
	Frames int
	// Out receives the frames.
	Out io.Writer
	// Terminal clears the screen before each frame.
	Terminal bool
}

// clearScreen moves the cursor home and clears the terminal (ANSI).
const clearScreen = "\x1b[H\x1b[2J"

// Run scrapes, waits an interval, scrapes again and prints a frame, until
// Frames frames are printed or ctx ends. A scrape error is shown in the
// frame rather than ending the view: a proxy may be restarting.
func Run(ctx context.Context, o Options) error {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	switch o.Sort {
	case "", edgestats.SortRPS, edgestats.SortSuccess, edgestats.SortP99:
	default:
		return fmt.Errorf("sort %q: want rps, success or p99", o.Sort)
	}
	prev, _, prevAt, err := scrape(ctx, o)
	if err != nil {
		return err
	}
	ticker := time.NewTicker(o.Interval)
	defer ticker.Stop()
	for frame := 0; o.Frames == 0 || frame < o.Frames; frame++ {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		cur, scrapeErr, at, err := scrape(ctx, o)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		stats := Filter(edgestats.Rates(prev, cur, at.Sub(prevAt)), o.Namespace)
		edgestats.SortBy(stats, o.Sort)
		if o.Terminal {
			fmt.Fprint(o.Out, clearScreen)
		}
		if err := Render(o.Out, Frame{At: at, Interval: at.Sub(prevAt), Stats: stats, EdgeSeries: cur.EdgeSeries, Proxies: cur.Proxies, Err: scrapeErr}); err != nil {
			return err
		}
		prev, prevAt = cur, at
	}
	return nil
}

// scrape lists the targets and scrapes them. err is fatal (no proxy could
// be listed); scrapeErr names proxies that could not be read.
func scrape(ctx context.Context, o Options) (s *edgestats.Sample, scrapeErr error, at time.Time, err error) {
	targets, err := o.Targets(ctx)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	if len(targets) == 0 {
		return nil, nil, time.Time{}, errors.New("no proxy to scrape")
	}
	s, scrapeErr = edgestats.Scrape(ctx, targets)
	return s, scrapeErr, time.Now(), nil
}

// Filter keeps the stats with traffic whose source or destination is in
// namespace ("" keeps every namespace).
func Filter(stats []edgestats.Stat, namespace string) []edgestats.Stat {
	out := stats[:0:0]
	for _, s := range stats {
		if s.HasTraffic && (namespace == "" || s.Namespace == namespace || s.SourceNamespace == namespace) {
			out = append(out, s)
		}
	}
	return out
}

// Frame is one refresh of the view.
type Frame struct {
	At         time.Time
	Interval   time.Duration
	Stats      []edgestats.Stat
	EdgeSeries bool
	Proxies    int
	Err        error
}

// Header is the column line of a frame, which tests and scripts parse.
var Header = []string{"SOURCE", "DESTINATION", "BACKEND", "RPS", "SUCCESS", "P50", "P99"}

// Render prints one frame: a title line, the column header and one row
// per edge, columns separated by at least two spaces.
func Render(w io.Writer, f Frame) error {
	series := "edge metrics"
	switch {
	case f.Proxies == 0:
		series = "no proxy could be read"
	case !f.EdgeSeries:
		series = "per-service metrics: sources and backends unknown (turn on the proxies' edge metrics)"
	}
	fmt.Fprintf(w, "nodemesh top  %s  %d proxies, over %s, %s\n", f.At.Format("15:04:05"), f.Proxies, f.Interval.Round(time.Millisecond), series)
	if f.Err != nil {
		fmt.Fprintf(w, "warning: %s\n", strings.ReplaceAll(f.Err.Error(), "\n", "; "))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(Header, "\t"))
	for _, s := range f.Stats {
		backend := s.Backend
		if backend == "" {
			backend = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.2f%%\t%s\t%s\n", s.Source(), s.Destination(), backend, s.RPS, 100*s.Success, Latency(s.P50), Latency(s.P99))
	}
	if len(f.Stats) == 0 {
		fmt.Fprintln(tw, "(no requests)")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w)
	return err
}

// Latency renders seconds as "0.8ms", "12ms" or "1.50s".
func Latency(sec float64) string {
	switch ms := sec * 1000; {
	case sec >= 1:
		return fmt.Sprintf("%.2fs", sec)
	case ms >= 10:
		return fmt.Sprintf("%.0fms", ms)
	default:
		return fmt.Sprintf("%.1fms", ms)
	}
}
