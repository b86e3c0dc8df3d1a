// Package dashboard is the controller's read-only web dashboard, served at
// /dashboard/ when the controller runs with --dashboard. It is a small
// static front end (vanilla JavaScript, CSS and inline SVG, embedded in the
// binary: no CDN, the cluster may be offline) that polls the controller's
// existing JSON API, plus two read-only endpoints this package adds:
//
//   - /api/dashboard/edges: live per-edge rates, read from the node
//     proxies' metrics (pkg/edgestats) between the previous and the current
//     scrape;
//   - /api/dashboard/events: the recent Events the controller emitted.
//
// Every handler answers GET only; nothing here writes to the cluster.
package dashboard

import (
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodemesh/nodemesh/pkg/edgestats"
)

// Paths the dashboard serves.
const (
	PathDashboard = "/dashboard/"
	PathEdges     = "/api/dashboard/edges"
	PathEvents    = "/api/dashboard/events"
)

// EventSource is the component of the controller's Events.
const EventSource = "nodemesh-controller"

// maxEvents bounds the Events listed.
const maxEvents = 50

// minScrapeInterval bounds how often the proxies are scraped, however many
// browsers poll: a scrape younger than this is served again.
const minScrapeInterval = time.Second

//go:embed static
var static embed.FS

// Options configure the dashboard.
type Options struct {
	// Kube lists the proxy pods and the Events.
	Kube kubernetes.Interface
	// MeshNamespace holds the proxy pods.
	MeshNamespace string
	// HTTPClient scrapes the proxies; nil means one with a 3 s timeout.
	HTTPClient *http.Client
}

// Dashboard serves the front end and its two endpoints.
type Dashboard struct {
	o Options

	mu       sync.Mutex
	prev     *edgestats.Sample
	prevAt   time.Time
	answer   *EdgesAnswer
	answerAt time.Time
}

// New returns a Dashboard.
func New(o Options) *Dashboard {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 3 * time.Second}
	}
	return &Dashboard{o: o}
}

// Register adds the dashboard's GET handlers to mux.
func (d *Dashboard) Register(mux *http.ServeMux) {
	files, _ := fs.Sub(static, "static") // cannot fail: the directory is embedded
	mux.Handle("GET "+PathDashboard, http.StripPrefix(PathDashboard, http.FileServerFS(files)))
	mux.HandleFunc("GET /dashboard", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, PathDashboard, http.StatusMovedPermanently)
	})
	mux.HandleFunc("GET "+PathEdges, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, d.Edges(r.Context()))
	})
	mux.HandleFunc("GET "+PathEvents, func(w http.ResponseWriter, r *http.Request) {
		events, err := d.Events(r.Context())
		if err != nil {
			writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, events)
	})
}

// EdgesAnswer is the body of /api/dashboard/edges.
type EdgesAnswer struct {
	// At is when the proxies were scraped; IntervalSeconds is the time since
	// the scrape the rates are computed against (0 on the first scrape).
	At              time.Time `json:"at"`
	IntervalSeconds float64   `json:"intervalSeconds"`
	// EdgeSeries is false when the proxies serve no edge metrics (sources
	// and backends are then unknown).
	EdgeSeries bool `json:"edgeSeries"`
	// Proxies are the proxy pods found, with the table version each serves.
	Proxies []Proxy          `json:"proxies"`
	Edges   []edgestats.Stat `json:"edges"`
	// Errors name the proxies that could not be read.
	Errors []string `json:"errors"`
}

// Proxy is one proxy pod.
type Proxy struct {
	Pod          string `json:"pod"`
	Node         string `json:"node"`
	URL          string `json:"url"`
	TableVersion uint64 `json:"tableVersion"`
}

// Edges scrapes the proxies (at most once per minScrapeInterval) and
// returns the rates since the previous scrape.
func (d *Dashboard) Edges(ctx context.Context) *EdgesAnswer {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	if d.answer != nil && now.Sub(d.answerAt) < minScrapeInterval {
		return d.answer
	}
	ans := &EdgesAnswer{At: now, Proxies: []Proxy{}, Edges: []edgestats.Stat{}, Errors: []string{}}
	pods, err := edgestats.ProxyPods(ctx, d.o.Kube, d.o.MeshNamespace)
	if err != nil {
		ans.Errors = append(ans.Errors, err.Error())
		return ans
	}
	urls := edgestats.PodURLs(pods)
	for i, p := range pods {
		ans.Proxies = append(ans.Proxies, Proxy{Pod: p.Name, Node: p.Spec.NodeName, URL: urls[i]})
	}
	sample, err := edgestats.Scrape(ctx, edgestats.URLTargets(urls, d.o.HTTPClient))
	if err != nil {
		ans.Errors = append(ans.Errors, err.Error())
	}
	for i := range ans.Proxies {
		ans.Proxies[i].TableVersion = sample.Versions[urls[i]]
	}
	ans.EdgeSeries = sample.EdgeSeries && sample.Proxies > 0
	if d.prev != nil {
		ans.IntervalSeconds = now.Sub(d.prevAt).Seconds()
		ans.Edges = edgestats.Rates(d.prev, sample, now.Sub(d.prevAt))
	}
	d.prev, d.prevAt, d.answer, d.answerAt = sample, now, ans, now
	return ans
}

// Event is one Event of the controller, trimmed for the page.
type Event struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	Reason  string    `json:"reason"`
	Object  string    `json:"object"`
	Message string    `json:"message"`
	Count   int32     `json:"count"`
}

// Events lists the newest Events the controller emitted, in every
// namespace, newest first. They are read from the apiserver rather than
// kept in memory: only the leader emits them, and the page may be served by
// any replica.
func (d *Dashboard) Events(ctx context.Context) ([]Event, error) {
	list, err := d.o.Kube.CoreV1().Events(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "source=" + EventSource})
	if err != nil {
		return nil, err
	}
	out := make([]Event, 0, len(list.Items))
	for _, e := range list.Items {
		out = append(out, Event{Time: eventTime(&e), Type: e.Type, Reason: e.Reason, Message: e.Message, Count: e.Count,
			Object: e.InvolvedObject.Kind + " " + e.InvolvedObject.Namespace + "/" + e.InvolvedObject.Name})
	}
	slices.SortFunc(out, func(a, b Event) int {
		return cmp.Or(b.Time.Compare(a.Time), cmp.Compare(a.Object, b.Object), cmp.Compare(a.Message, b.Message))
	})
	if len(out) > maxEvents {
		out = out[:maxEvents]
	}
	return out, nil
}

// eventTime is when an Event last happened, whichever field its recorder
// filled.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
