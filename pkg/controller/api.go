package controller

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nodemesh/nodemesh/pkg/dashboard"
	"github.com/nodemesh/nodemesh/pkg/distribution"
	"github.com/nodemesh/nodemesh/pkg/pprofmux"
	"github.com/nodemesh/nodemesh/pkg/smidiscovery"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

// Paths of the controller API (team contract; see docs/controller.md).
const (
	PathConfiguration = "/api/configuration/current"
	PathTopology      = "/api/topology/current"
	PathNodes         = "/api/status/nodes"
	PathReadiness     = "/api/status/readiness"
	PathErrors        = "/api/status/errors"
	PathDNS           = "/api/status/dns"
	PathReady         = "/ready"
	PathLive          = "/live"
	PathMetrics       = "/metrics"
)

// Handler serves the controller API, the proxies' table watch and metrics.
func (c *Controller) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+distribution.Path, c.server)
	mux.HandleFunc("GET "+PathConfiguration, func(w http.ResponseWriter, _ *http.Request) {
		if t := c.server.Current(); t != nil {
			writeJSON(w, http.StatusOK, t)
			return
		}
		writeJSON(w, http.StatusServiceUnavailable, apiError{"no table built yet"})
	})
	mux.HandleFunc("GET "+PathTopology, func(w http.ResponseWriter, _ *http.Request) {
		if t := c.topo.Load(); t != nil {
			writeJSON(w, http.StatusOK, t)
			return
		}
		writeJSON(w, http.StatusServiceUnavailable, apiError{"no topology built yet"})
	})
	mux.HandleFunc("GET "+PathNodes, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, c.NodesStatus()) })
	mux.HandleFunc("GET "+PathReadiness, func(w http.ResponseWriter, _ *http.Request) {
		r := c.Readiness()
		code := http.StatusOK
		if !r.Ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, r)
	})
	mux.HandleFunc("GET "+PathErrors, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, c.Errors()) })
	mux.HandleFunc("GET "+PathDNS, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, c.dns.status()) })
	mux.HandleFunc("GET "+PathReady, func(w http.ResponseWriter, _ *http.Request) {
		if c.Ready() {
			_, _ = w.Write([]byte("ok\n"))
			return
		}
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET "+PathLive, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.Handle("GET "+PathMetrics, promhttp.HandlerFor(c.metrics.registry, promhttp.HandlerOpts{}))
	if c.cfg.Pprof {
		pprofmux.Register(mux)
	}
	if c.cfg.Dashboard {
		dashboard.New(dashboard.Options{Kube: c.clients.kube, MeshNamespace: c.cfg.MeshNamespace}).Register(mux)
	}
	return mux
}

// NodesStatus is the answer of /api/status/nodes.
type NodesStatus struct {
	// TableVersion is the version this replica serves.
	TableVersion uint64 `json:"tableVersion"`
	// Nodes are the proxies heard from, sorted by node.
	Nodes []NodeStatus `json:"nodes"`
}

// NodeStatus is one proxy's status.
type NodeStatus struct {
	distribution.NodeStatus
	// UpToDate is true when the proxy applied the served version.
	UpToDate bool `json:"upToDate"`
}

// NodesStatus reports every proxy heard from.
func (c *Controller) NodesStatus() NodesStatus {
	v := c.server.Version()
	out := NodesStatus{TableVersion: v, Nodes: []NodeStatus{}}
	for _, n := range c.server.Nodes() {
		out.Nodes = append(out.Nodes, NodeStatus{NodeStatus: n, UpToDate: n.AppliedVersion == v})
	}
	return out
}

// Readiness is the answer of /api/status/readiness.
type Readiness struct {
	// Ready is true once the caches synced and a table is served.
	Ready bool `json:"ready"`
	// Synced is true once every informer cache synced.
	Synced bool `json:"synced"`
	// TableVersion is the served version (0 before the first build).
	TableVersion uint64 `json:"tableVersion"`
	// Leader describes leader election.
	Leader LeaderStatus `json:"leader"`
	// SMI is what discovery found (nil until it ran).
	SMI *smidiscovery.Result `json:"smi"`
	// Errors counts the per-object errors (listed at /api/status/errors).
	Errors int `json:"errors"`
	// ShadowBacklog counts shadow writes waiting (leader only).
	ShadowBacklog int `json:"shadowBacklog"`
	// Proxies counts proxies connected and behind the served version.
	ProxiesConnected int `json:"proxiesConnected"`
	ProxiesLagging   int `json:"proxiesLagging"`
	// DNS is the DNS patch (--patch-dns); nil when off. It does not make
	// the replica unready: the table is served either way.
	DNS *DNSStatus `json:"dns,omitempty"`
}

// LeaderStatus describes leader election from this replica's view.
type LeaderStatus struct {
	// Enabled is --leader-elect.
	Enabled bool `json:"enabled"`
	// Identity is this replica's name in the Lease.
	Identity string `json:"identity,omitempty"`
	// Leader is the current leader's identity, when known.
	Leader string `json:"leader,omitempty"`
	// Leading is true while this replica writes shadow Services.
	Leading bool `json:"leading"`
}

// Readiness reports this replica's state.
func (c *Controller) Readiness() Readiness {
	r := Readiness{
		Ready:         c.Ready(),
		Synced:        c.synced.Load(),
		TableVersion:  c.server.Version(),
		ShadowBacklog: c.shadowBacklog(),
	}
	r.Leader.Enabled = c.cfg.LeaderElect
	r.Leader.Identity, r.Leader.Leader, r.Leader.Leading = c.leader.get()
	r.SMI = c.smiResult()
	if t := c.topo.Load(); t != nil {
		r.Errors = len(t.Errors)
	}
	r.ProxiesConnected, r.ProxiesLagging = c.proxyCounts()
	if c.dns != nil {
		d := c.dns.status()
		r.DNS = &d
	}
	return r
}

// ErrorsStatus is the answer of /api/status/errors.
type ErrorsStatus struct {
	// SMI is what discovery found; SMI.Missing says which features are off.
	SMI *smidiscovery.Result `json:"smi"`
	// Errors are the latest build's per-object errors, sorted.
	Errors []topology.ObjectError `json:"errors"`
}

// smiResult returns a copy of the latest SMI discovery result, nil before
// the first.
func (c *Controller) smiResult() *smidiscovery.Result {
	smi := c.smi.Load()
	if smi == nil {
		return nil
	}
	cp := *smi
	return &cp
}

// Errors reports the SMI discovery result and every per-object error.
func (c *Controller) Errors() ErrorsStatus {
	out := ErrorsStatus{Errors: []topology.ObjectError{}}
	out.SMI = c.smiResult()
	if t := c.topo.Load(); t != nil && t.Errors != nil {
		out.Errors = t.Errors
	}
	return out
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
