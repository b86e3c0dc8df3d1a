// Package admin serves the node proxy's admin endpoint (--admin-port, 7001):
//
//	/live     200 while the process serves HTTP at all
//	/ready    200 once the first table is applied, 503 before
//	/config   the applied table as JSON (header X-Nodemesh-Table-Version);
//	          /config?state adds the live traffic-policy state:
//	          {"table": ..., "state": ...}
//	/metrics  Prometheus metrics of the proxy's own registry
//	/debug/pprof/  Go's runtime profiles, only with --pprof
//
// It is a separate listener from the data plane so that probes and scrapes
// never queue behind mesh traffic and are never routed by Host.
package admin

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nodemesh/nodemesh/pkg/pprofmux"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// HeaderVersion carries the applied table version on /config.
const HeaderVersion = "X-Nodemesh-Table-Version"

// Options configures the admin handler.
type Options struct {
	// Applied returns the applied table, or nil before the first one. It
	// decides /ready and serves /config.
	Applied func() *table.Table
	// Gatherer is scraped by /metrics.
	Gatherer prometheus.Gatherer
	// Draining reports that the proxy is shutting down: /ready then fails
	// so that the pod leaves its Services' endpoints while the proxy still
	// serves. nil means never.
	Draining func() bool
	// State returns the data planes' live traffic-policy state (outlier
	// ejections, in-flight counts), served by /config?state; nil serves
	// none.
	State func() any
	// Pprof serves net/http/pprof's profiles under /debug/pprof/. Off by
	// default: a CPU profile costs the data plane while it runs, and the
	// admin port is reachable from the pod network.
	Pprof bool
}

// ConfigWithState is the answer of /config?state. Plain /config stays the
// table alone, so that it remains a table file Decode reads strictly (and
// a proxy can be fed with --table-file).
type ConfigWithState struct {
	Table *table.Table `json:"table"`
	State any          `json:"state"`
}

// Handler returns the admin endpoint's handler.
func Handler(opts Options) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, _ *http.Request) {
		text(w, http.StatusOK, "live\n")
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if opts.Applied() == nil {
			text(w, http.StatusServiceUnavailable, "not ready: no routing table applied yet\n")
			return
		}
		if opts.Draining != nil && opts.Draining() {
			text(w, http.StatusServiceUnavailable, "not ready: shutting down, draining connections\n")
			return
		}
		text(w, http.StatusOK, "ready\n")
	})
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, r *http.Request) {
		t := opts.Applied()
		if t == nil {
			text(w, http.StatusServiceUnavailable, "no routing table applied yet\n")
			return
		}
		b, err := table.Encode(t)
		if r.URL.Query().Has("state") {
			c := ConfigWithState{Table: t}
			if opts.State != nil {
				c.State = opts.State()
			}
			b, err = json.Marshal(c)
		}
		if err != nil {
			text(w, http.StatusInternalServerError, err.Error()+"\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set(HeaderVersion, strconv.FormatUint(t.Version, 10))
		_, _ = w.Write(b)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}))
	if opts.Pprof {
		pprofmux.Register(mux)
	}
	return mux
}

func text(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}
