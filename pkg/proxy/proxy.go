// Package proxy runs `nodemesh proxy`: it takes routing tables from the
// controller's watch (pkg/distribution) or from a file, and applies each one
// to the HTTP, TCP and UDP data planes as a whole, serving the admin
// endpoint alongside.
//
// Apply is all or nothing. The HTTP router builds its new handlers without
// serving them (Prepare); the TCP and UDP managers then apply the table,
// each all or nothing; if one fails, the ones already applied get the old
// table back. Only when every stream manager succeeded is the HTTP table
// committed, with one atomic pointer store that cannot fail. So a bad table
// leaves the old one serving everywhere.
package proxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/nodemesh/nodemesh/pkg/proxy/httpproxy"
	"github.com/nodemesh/nodemesh/pkg/proxy/tcpproxy"
	"github.com/nodemesh/nodemesh/pkg/proxy/udpproxy"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// StreamManager is what the proxy needs of the TCP and UDP managers: an
// all-or-nothing Apply (on error the manager keeps its previous state) and
// Close.
type StreamManager interface {
	Apply(t *table.Table) error
	Close() error
}

// Proxy is one node proxy: its data planes, its applied table and its
// metrics. Apply is safe for concurrent use.
type Proxy struct {
	cfg     Config
	log     *slog.Logger
	reg     *prometheus.Registry
	http    *httpproxy.Router
	streams []StreamManager
	metrics *runnerMetrics
	acl     *accessControl
	obs     *observability // edge metrics and access log (observability.go)

	mu      sync.Mutex // one Apply at a time
	applied atomic.Pointer[table.Table]

	httpL, adminL net.Listener // opened by Listen
}

// New builds a proxy from cfg with its own metrics registry. It opens no
// listener: Run does, and Apply opens the TCP and UDP ones a table asks for.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	level, _ := parseLevel(cfg.LogLevel)
	logger := slog.New(slog.NewTextHandler(logOutput, &slog.HandlerOptions{Level: level}))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	p := &Proxy{cfg: cfg, log: logger, reg: reg, metrics: newRunnerMetrics(reg)}
	p.acl = newAccessControl(reg, logger.With("plane", "acl"))
	obs, err := newObservability(cfg, reg)
	if err != nil {
		return nil, err
	}
	p.obs = obs
	p.http = httpproxy.New(httpproxy.Options{
		DialTimeout:           cfg.DialTimeout,
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		IdleConnTimeout:       cfg.BackendIdleTimeout,
		VerifyHTTPSBackends:   cfg.VerifyHTTPSBackends,
		RetryMaxBodyBytes:     cfg.RetryMaxBodyBytes,
		Registerer:            reg,
		Logger:                logger.With("plane", "http"),
		Admit:                 p.acl.admitHTTP,
		Node:                  cfg.NodeName(),
		EdgeMetrics:           cfg.EdgeMetrics,
		Sources:               obs.sources,
		AccessLog:             obs.log,
		StdSocketIO:           !cfg.RawSocketIO,
	})
	p.streams = []StreamManager{
		tcpproxy.New(tcpproxy.Options{
			ListenAddress:  cfg.ListenAddress,
			ConnectTimeout: cfg.TCPConnectTimeout,
			IdleTimeout:    cfg.TCPIdleTimeout,
			Registerer:     reg,
			Logger:         logger.With("plane", "tcp"),
			Admit:          p.acl.admitTCP,
			Node:           cfg.NodeName(),
			EdgeMetrics:    cfg.EdgeMetrics,
			Sources:        obs.sources,
			AccessLog:      obs.log,
		}),
		udpproxy.New(udpproxy.Options{
			ListenAddress: cfg.ListenAddress,
			IdleTimeout:   cfg.UDPIdleTimeout,
			Registerer:    reg,
			Logger:        logger.With("plane", "udp"),
			Admit:         p.acl.admitUDP,
			Node:          cfg.NodeName(),
			EdgeMetrics:   cfg.EdgeMetrics,
			Sources:       obs.sources,
			AccessLog:     obs.log,
		}),
	}
	return p, nil
}

// logOutput is where the proxy logs; tests may replace it.
var logOutput io.Writer = os.Stderr

// Registry returns the proxy's metrics registry (served on /metrics).
func (p *Proxy) Registry() *prometheus.Registry { return p.reg }

// Applied returns the table being served, nil before the first Apply.
func (p *Proxy) Applied() *table.Table { return p.applied.Load() }

// HTTPHandler returns the shared HTTP listener's handler.
func (p *Proxy) HTTPHandler() *httpproxy.Router { return p.http }

// Apply validates t and applies it to every data plane, or to none: on
// error the previous table keeps serving everywhere. t must not be modified
// afterwards.
func (p *Proxy) Apply(t *table.Table) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := time.Now()
	err := p.apply(t)
	p.metrics.duration.Observe(time.Since(start).Seconds())
	if err != nil {
		p.metrics.errors.Inc()
		return err
	}
	p.applied.Store(t)
	p.metrics.reloads.Inc()
	p.metrics.version.Set(float64(t.Version))
	p.metrics.lastSuccess.SetToCurrentTime()
	p.log.Info("routing table applied", "version", t.Version, "http", len(t.HTTP), "tcp", len(t.TCP), "udp", len(t.UDP), "acl", t.ACL, "took", time.Since(start))
	return nil
}

// applyEncoded decodes a table and applies it; an undecodable table counts
// as a rejected reload too.
func (p *Proxy) applyEncoded(b []byte) error {
	start := time.Now()
	t, err := table.Decode(b)
	p.metrics.decode.Observe(time.Since(start).Seconds())
	if err != nil {
		p.metrics.errors.Inc()
		return err
	}
	return p.Apply(t)
}

func (p *Proxy) apply(t *table.Table) error {
	if err := table.Validate(t); err != nil {
		return fmt.Errorf("invalid table version %d: %w", t.Version, err)
	}
	aclState, err := p.acl.prepare(t)
	if err != nil {
		return fmt.Errorf("table version %d: access control: %w", t.Version, err)
	}
	prepared, err := p.http.Prepare(t)
	if err != nil {
		return fmt.Errorf("table version %d: %w", t.Version, err)
	}
	old := p.applied.Load()
	if old == nil {
		old = &table.Table{Schema: table.SchemaVersion} // rolling back the first table closes what it opened
	}
	// The stream planes serve t, and re-check their open connections
	// against it, as soon as they apply it: its access control must be in
	// place first.
	oldACL := p.acl.install(aclState)
	for i, s := range p.streams {
		if err := s.Apply(t); err != nil {
			p.acl.install(oldACL)
			var rollback []error
			for j := i - 1; j >= 0; j-- {
				if rerr := p.streams[j].Apply(old); rerr != nil {
					rollback = append(rollback, rerr)
				}
			}
			if len(rollback) > 0 {
				// The old ports were ours a moment ago; losing one in
				// between is the only way here. Say so loudly.
				p.log.Error("rollback to the previous table failed", "err", errors.Join(rollback...))
			}
			return fmt.Errorf("table version %d: %w", t.Version, err)
		}
	}
	p.http.Commit(prepared)
	p.acl.forgetServices(p.applied.Load(), t)
	return nil
}

// Close closes the stream listeners and idle backend connections.
func (p *Proxy) Close() error {
	var errs []error
	for _, s := range p.streams {
		errs = append(errs, s.Close())
	}
	p.http.Close()
	errs = append(errs, p.obs.close())
	return errors.Join(errs...)
}

// runnerMetrics are the proxy's table and reload metrics.
type runnerMetrics struct {
	version     prometheus.Gauge
	reloads     prometheus.Counter
	errors      prometheus.Counter
	duration    prometheus.Histogram
	decode      prometheus.Histogram
	lastSuccess prometheus.Gauge
}

func newRunnerMetrics(reg prometheus.Registerer) *runnerMetrics {
	m := &runnerMetrics{
		version: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nodemesh_proxy_table_version", Help: "Version of the routing table being served (0 before the first).",
		}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nodemesh_proxy_reloads_total", Help: "Routing tables applied.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nodemesh_proxy_reload_errors_total", Help: "Routing tables rejected; the previous table kept serving.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "nodemesh_proxy_reload_duration_seconds", Help: "Time to validate and apply a routing table.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		decode: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "nodemesh_proxy_table_decode_duration_seconds", Help: "Time to decode a received routing table (a whole table, or a delta into a whole table), before it is validated and applied.",
			Buckets: []float64{.0001, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nodemesh_proxy_last_reload_success_timestamp_seconds", Help: "Unix time of the latest applied table.",
		}),
	}
	reg.MustRegister(m.version, m.reloads, m.errors, m.duration, m.decode, m.lastSuccess)
	return m
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}
