// Package httpproxy is the node proxy's HTTP data plane: one shared
// listener for every mesh service, routed by Host (and port), built on oxy:
// a route's A/B rules and weighted backends pick an oxy round robin, which
// hands the request to an oxy forwarder; retries (oxy buffer), a circuit
// breaker (oxy cbreaker) and a per-source rate limit (oxy ratelimit) wrap
// it as the route's middleware asks.
//
// A table is turned into handlers once, by Prepare, and swapped in by
// Commit with one atomic pointer store: requests already running finish on
// the handlers they started with, and a table that fails to build changes
// nothing. A route whose definition did not change keeps its handler, and
// with it its round-robin position, breaker statistics and rate buckets.
package httpproxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/pkg/proxy/accesslog"
	"github.com/nodemesh/nodemesh/pkg/proxy/balance"
	"github.com/nodemesh/nodemesh/pkg/proxy/edges"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// Defaults for zero Options fields.
const (
	DefaultDialTimeout               = 5 * time.Second
	DefaultResponseHeaderTimeout     = 60 * time.Second
	DefaultIdleConnTimeout           = 90 * time.Second
	DefaultMaxIdleConnsPerHost       = 64
	DefaultRetryMaxBodyBytes         = 1 << 20
	DefaultCircuitBreakerFallback    = 10 * time.Second
	DefaultCircuitBreakerRecovery    = 10 * time.Second
	DefaultCircuitBreakerCheckPeriod = 100 * time.Millisecond
)

// AdmitFunc decides whether a request may use route, which belongs to table
// t. It is where ACL enforcement plugs in: nil admits the request; an error
// refuses it with 403, and its text (one short line naming the reason) is
// the body.
type AdmitFunc func(t *table.Table, route *table.HTTPRoute, r *http.Request) error

// Options configures a Router. The zero value is usable.
type Options struct {
	// DialTimeout bounds a connect to a backend endpoint. Zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a backend's response
	// headers; past it the client gets 504. Zero means
	// DefaultResponseHeaderTimeout; negative means no limit.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout closes idle backend connections. Zero means
	// DefaultIdleConnTimeout.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost is how many idle keep-alive connections are kept
	// per endpoint. net/http's default of 2 would make a busy proxy
	// reconnect constantly. Zero means DefaultMaxIdleConnsPerHost.
	MaxIdleConnsPerHost int
	// VerifyHTTPSBackends turns on certificate verification towards https
	// backends. Off by default: pods rarely hold a certificate valid for
	// their IP from a CA the proxy trusts.
	VerifyHTTPSBackends bool
	// RetryMaxBodyBytes is the largest request body held in memory for
	// replay on routes with retries; larger bodies, and bodies of unknown
	// length, are forwarded unbuffered and never retried. Zero means
	// DefaultRetryMaxBodyBytes.
	RetryMaxBodyBytes int64
	// CircuitBreakerFallback is how long a tripped breaker answers 503
	// before it lets traffic through again; CircuitBreakerRecovery is how
	// long it then ramps traffic up; CircuitBreakerCheckPeriod is how often
	// it evaluates its expression. Zero means the Default* values (oxy's).
	CircuitBreakerFallback    time.Duration
	CircuitBreakerRecovery    time.Duration
	CircuitBreakerCheckPeriod time.Duration
	// Registerer receives the nodemesh_proxy_http_* metrics; nil means they
	// are kept but not registered.
	Registerer prometheus.Registerer
	// Logger receives build errors; nil discards them.
	Logger *slog.Logger
	// Admit, when set, is asked about every routed request; nil admits all.
	Admit AdmitFunc
	// Node is the node this proxy runs on, for locality-aware balancing;
	// its zone comes from the table's Nodes. Empty means unknown.
	Node string
	// EdgeMetrics turns on the nodemesh_proxy_edge_http_* metrics, by
	// source workload, destination and backend (edgemetrics.go). Off in
	// the zero value.
	EdgeMetrics bool
	// Sources names clients from their address for edge metrics and the
	// access log; share one Resolver among the data planes so each table is
	// indexed once. Nil means a Resolver of the Router's own.
	Sources *edges.Resolver
	// AccessLog, when set, receives an entry per request (sampled and
	// rate limited by the Logger).
	AccessLog *accesslog.Logger
	// StdSocketIO makes backend connections read and write with
	// net.TCPConn's own methods. By default they use raw system calls
	// (pkg/proxy/sockio), which cost less CPU per request.
	StdSocketIO bool
}

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.DialTimeout, DefaultDialTimeout)
	def(&o.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	if o.ResponseHeaderTimeout < 0 {
		o.ResponseHeaderTimeout = 0 // net/http: no limit
	}
	def(&o.IdleConnTimeout, DefaultIdleConnTimeout)
	def(&o.CircuitBreakerFallback, DefaultCircuitBreakerFallback)
	def(&o.CircuitBreakerRecovery, DefaultCircuitBreakerRecovery)
	def(&o.CircuitBreakerCheckPeriod, DefaultCircuitBreakerCheckPeriod)
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if o.RetryMaxBodyBytes <= 0 {
		o.RetryMaxBodyBytes = DefaultRetryMaxBodyBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Router is the http.Handler of the shared HTTP listener. Until the first
// Commit it answers every request 404.
type Router struct {
	opts    Options
	fwd     *forwarders
	metrics *metrics
	policy  *policyMetrics

	current atomic.Pointer[Prepared]
	mu      sync.Mutex // serialises Prepare/Commit against each other
}

// New returns a Router with an empty table.
func New(opts Options) *Router {
	opts.setDefaults()
	rt := &Router{opts: opts, fwd: newForwarders(&opts), metrics: newMetrics(opts.Registerer)}
	rt.policy = newPolicyMetrics(opts.Registerer, rt)
	rt.metrics.edges = newEdgeMetrics(&rt.opts)
	rt.current.Store(&Prepared{hosts: map[string]*hostRoutes{}})
	return rt
}

// Prepared is a table built into handlers, ready to be committed.
type Prepared struct {
	table  *table.Table
	hosts  map[string]*hostRoutes
	routes map[routeKey]*route
}

type routeKey struct {
	svc  table.ServiceRef
	port int32
}

// hostRoutes are the routes of one host name: by port, and the one a Host
// without port selects.
type hostRoutes struct {
	def   *route
	ports []portRoute
}

type portRoute struct {
	port int
	r    *route
}

// Apply builds t and swaps it in; on error the serving table is unchanged.
func (rt *Router) Apply(t *table.Table) error {
	p, err := rt.Prepare(t)
	if err != nil {
		return err
	}
	rt.Commit(p)
	return nil
}

// Prepare builds the handlers of t's HTTP routes without serving them. t
// should have passed table.Validate; Prepare still refuses what it cannot
// build (a bad regex, a duplicate host and port). Routes equal to a serving
// route reuse its handler. t must not be modified afterwards. Callers run
// one Prepare/Commit pair at a time (pkg/proxy holds a lock around both): a
// Prepared reuses the handlers of the table serving when it was built.
func (rt *Router) Prepare(t *table.Table) (*Prepared, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	old := rt.current.Load()
	zone := balance.ZoneOf(t, rt.opts.Node)
	p := &Prepared{table: t, hosts: make(map[string]*hostRoutes, 2*len(t.HTTP)), routes: make(map[routeKey]*route, len(t.HTTP))}
	var errs []error
	for i := range t.HTTP {
		spec := &t.HTTP[i]
		k := routeKey{spec.Service, spec.Port}
		if _, dup := p.routes[k]; dup {
			errs = append(errs, fmt.Errorf("http route %s port %d: duplicate route", spec.Service, spec.Port))
			continue
		}
		r := old.routes[k]
		if r == nil || !r.reusable(spec, zone) {
			var err error
			if r, err = rt.buildRoute(spec, old.routes[k], zone); err != nil {
				errs = append(errs, fmt.Errorf("http route %s port %d: %w", spec.Service, spec.Port, err))
				continue
			}
		}
		p.routes[k] = r
		for _, h := range spec.Hosts {
			hr := p.hosts[h]
			if hr == nil {
				hr = &hostRoutes{}
				p.hosts[h] = hr
			}
			for _, pr := range hr.ports {
				if pr.port == int(spec.Port) {
					errs = append(errs, fmt.Errorf("http route %s port %d: host %s port %d is already routed", spec.Service, spec.Port, h, spec.Port))
				}
			}
			hr.ports = append(hr.ports, portRoute{int(spec.Port), r})
			if spec.DefaultPort {
				if hr.def != nil {
					errs = append(errs, fmt.Errorf("http route %s port %d: host %s has two default ports", spec.Service, spec.Port, h))
				}
				hr.def = r
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// Commit serves p from now on. Requests in flight finish on the handlers
// they started with.
func (rt *Router) Commit(p *Prepared) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	// A service's metrics live as long as the service is in the table: a
	// rebuilt route takes those of the route it replaces, with their
	// cache of series, rather than looking each series up again (1,000
	// lookups in a reload in which every route changed).
	byService := make(map[table.ServiceRef]*routeMetrics, len(p.routes))
	for _, r := range p.routes {
		if r.metrics != nil {
			byService[r.spec.Service] = r.metrics
		}
	}
	old := rt.current.Load()
	for _, r := range p.routes {
		if r.handler != nil {
			continue
		}
		rm := byService[r.spec.Service]
		if rm == nil {
			if prev := old.routes[routeKey{r.spec.Service, r.spec.Port}]; prev != nil && prev.metrics != nil {
				rm = prev.metrics
			} else {
				rm = newRouteMetrics(rt.metrics, r.spec.Service)
			}
			byService[r.spec.Service] = rm
		}
		r.metrics = rm
		r.handler = rm.instrument(r.inner)
	}
	rt.current.Store(p)
	rt.metrics.edges.commit(p)
	for k := range old.routes {
		if _, ok := byService[k.svc]; !ok {
			rt.metrics.forget(k.svc)
			rt.policy.forget(k.svc)
		}
	}
}

// Table returns the committed table, nil before the first Commit.
func (rt *Router) Table() *table.Table { return rt.current.Load().table }

// Close drops idle backend connections.
func (rt *Router) Close() { rt.fwd.close() }

// ServeHTTP routes r by its Host header.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := rt.current.Load()
	host, port := splitHost(r.Host)
	route := p.lookup(host, port)
	if route == nil {
		rt.metrics.unknownHost.Inc()
		if len(host) > 255 {
			host = host[:255]
		}
		plain(w, http.StatusNotFound, "no route for host "+strconv.Quote(host)+"\n")
		return
	}
	if rt.opts.Admit != nil {
		if err := rt.opts.Admit(p.table, &route.spec, r); err != nil {
			route.metrics.counter(r.Method, http.StatusForbidden).Inc()
			route.metrics.edge.refused(r, http.StatusForbidden)
			plain(w, http.StatusForbidden, err.Error()+"\n")
			return
		}
	}
	route.handler.ServeHTTP(w, r)
}

// lookup finds the route of host and port; port 0 means the Host had none.
func (p *Prepared) lookup(host string, port int) *route {
	hr := p.hosts[host]
	if hr == nil {
		return nil
	}
	if port == 0 {
		return hr.def
	}
	for i := range hr.ports {
		if hr.ports[i].port == port {
			return hr.ports[i].r
		}
	}
	return nil
}

// splitHost parses a Host header into a lower-case name without trailing
// dot, and its port (0 when absent or malformed, -1 when malformed so that
// nothing matches). IPv6 literals come bracketed: "[fd00::1]:80".
func splitHost(h string) (string, int) {
	port := 0
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return h, -1
		}
		rest := h[end+1:]
		h = h[1:end]
		if rest != "" {
			if rest[0] != ':' {
				return h, -1
			}
			port = parsePort(rest[1:])
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h[:i], ':') < 0 {
		port = parsePort(h[i+1:])
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			h = strings.ToLower(h)
			break
		}
	}
	return h, port
}

// parsePort returns p as a port number, or -1 if it is not one.
func parsePort(p string) int {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 || p[0] == '+' {
		return -1
	}
	return n
}

// plain writes a short text answer the proxy makes itself.
func plain(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}
