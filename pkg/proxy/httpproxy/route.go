package httpproxy

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/vulcand/oxy/v2/cbreaker"
	"github.com/vulcand/oxy/v2/ratelimit"
	"github.com/vulcand/oxy/v2/roundrobin"
	"github.com/vulcand/oxy/v2/utils"

	"github.com/nodemesh/nodemesh/pkg/httpmatch"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// route is the handler of one table.HTTPRoute, built once per table: the
// middleware chain around a selector of A/B rules and weighted backends.
type route struct {
	spec    table.HTTPRoute // as built; a reload reuses the route when equal
	pol     *routePolicy    // traffic-policy state (policy.go)
	metrics *routeMetrics   // set at commit
	inner   http.Handler    // middleware + selector, without metrics
	handler http.Handler    // inner wrapped by metrics
}

// buildRoute builds the handler of r. Nothing it builds is shared with a
// running route but the traffic-policy state taken over from prev (the
// serving version of the route, or nil), so a failure leaves the serving
// table untouched. zone is the proxy's zone, for locality.
func (rt *Router) buildRoute(r *table.HTTPRoute, prev *route, zone string) (*route, error) {
	fwd := rt.fwd.handlers[r.Scheme]
	if fwd == nil {
		return nil, fmt.Errorf("unknown scheme %q", r.Scheme)
	}
	pm := rt.policy.forService(r.Service)
	pol := newRoutePolicy(r, prev, zone, pm)
	sel := &selector{svc: r.Service}
	var err error
	for i := range r.Matches {
		m := &r.Matches[i]
		var rule matchRule
		if rule.match, err = httpmatch.Compile(m.Match, nil); err != nil {
			return nil, fmt.Errorf("match %q: %w", m.Name, err)
		}
		if rule.backends, err = rt.backends(pol, m.Backends, r, fwd); err != nil {
			return nil, fmt.Errorf("match %q: %w", m.Name, err)
		}
		sel.rules = append(sel.rules, rule)
	}
	if sel.def, err = rt.backends(pol, r.Backends, r, fwd); err != nil {
		return nil, err
	}
	var h http.Handler = sel
	mw := r.Middleware
	if mw.RetryAttempts > 1 {
		retries := rt.metrics.retries.WithLabelValues(r.Service.Namespace, r.Service.Name)
		if h, err = newRetrier(h, mw.RetryAttempts, rt.opts.RetryMaxBodyBytes, retries, pol.budget); err != nil {
			return nil, fmt.Errorf("retry: %w", err)
		}
	}
	if mw.RequestTimeout > 0 {
		h = newRequestTimeout(h, mw.RequestTimeout.D(), r.Service.String())
	}
	if mw.CircuitBreaker != "" {
		svc := r.Service.String()
		fallback := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			plain(w, http.StatusServiceUnavailable, "circuit breaker open for "+svc+"\n")
		})
		if h, err = cbreaker.New(h, mw.CircuitBreaker,
			cbreaker.Fallback(fallback),
			cbreaker.FallbackDuration(rt.opts.CircuitBreakerFallback),
			cbreaker.RecoveryDuration(rt.opts.CircuitBreakerRecovery),
			cbreaker.CheckPeriod(rt.opts.CircuitBreakerCheckPeriod),
		); err != nil {
			return nil, fmt.Errorf("circuit breaker %q: %w", mw.CircuitBreaker, err)
		}
	}
	if mw.MaxRequests > 0 {
		h = newMaxRequests(h, mw.MaxRequests, pol.inflight, r.Service.String(), pm.maxRequests)
	}
	if rl := mw.RateLimit; rl != nil {
		rates := ratelimit.NewRateSet()
		if err := rates.Add(time.Second, rl.Average, rl.Burst); err != nil {
			return nil, fmt.Errorf("rate limit: %w", err)
		}
		if h, err = ratelimit.New(h, utils.ExtractorFunc(sourceIP), rates); err != nil {
			return nil, fmt.Errorf("rate limit: %w", err)
		}
	}
	if f := mw.Faults; f != nil && (f.AbortPercent > 0 || f.DelayPercent > 0) {
		h = newFaultInjector(h, f, r.Service.String(), pm)
	}
	return &route{spec: *r, pol: pol, inner: h}, nil
}

// sourceIP keys rate limits by client IP. oxy's "client.ip" extractor cuts
// RemoteAddr at the first colon, which breaks IPv6 addresses.
func sourceIP(r *http.Request) (string, int64, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return "", 0, fmt.Errorf("client address %q: %w", r.RemoteAddr, err)
	}
	return host, 1, nil
}

// selector sends a request to the backends of the first A/B rule it
// matches, in table order, else to the route's default backends.
type selector struct {
	svc   table.ServiceRef
	rules []matchRule
	def   http.Handler
}

type matchRule struct {
	match    *httpmatch.Matcher
	backends http.Handler // *backendSet, or *balancedBackends with a policy
}

func (s *selector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := httpmatch.Path(r)
	for i := range s.rules {
		if s.rules[i].match.Match(r, path) {
			s.rules[i].backends.ServeHTTP(w, r)
			return
		}
	}
	s.def.ServeHTTP(w, r)
}

// backendSet picks a Backend by weight, then lets that Backend's oxy
// round robin pick an endpoint. Backends with weight 0 or without endpoints
// take no traffic; their share goes to the others.
type backendSet struct {
	svc    table.ServiceRef
	groups []weighted
	total  int64
}

type weighted struct {
	upTo int64                  // cumulative weight
	lb   *roundrobin.RoundRobin // picks the endpoint
	fwd  http.Handler           // lb's next handler: the forwarder
	name string                 // the backend service's name, for edge metrics
}

func newBackendSet(bs []table.Backend, scheme table.Scheme, fwd http.Handler, svc table.ServiceRef) (*backendSet, error) {
	set := &backendSet{svc: svc}
	urlScheme := "http"
	if scheme == table.SchemeHTTPS {
		urlScheme = "https"
	}
	for _, b := range bs {
		if b.Weight <= 0 || len(b.Endpoints) == 0 {
			continue
		}
		lb, err := roundrobin.New(fwd)
		if err != nil {
			return nil, err
		}
		// The URL is built, not parsed: an ip:port (an IPv6 address in
		// brackets) is already a URL's host, and parsing 10,000 endpoints
		// was a quarter of a large table's reload. UpsertServer keeps a
		// copy, so one URL serves every endpoint; every server takes
		// oxy's default weight, 1.
		u := url.URL{Scheme: urlScheme}
		for _, e := range b.Endpoints {
			if _, port, err := net.SplitHostPort(e.Address); err != nil || port == "" {
				return nil, fmt.Errorf("backend %s: endpoint %q is not ip:port", b.Service, e.Address)
			}
			u.Host = e.Address
			if err := lb.UpsertServer(&u); err != nil {
				return nil, fmt.Errorf("backend %s: %w", b.Service, err)
			}
		}
		set.total += int64(b.Weight)
		set.groups = append(set.groups, weighted{upTo: set.total, lb: lb, fwd: fwd, name: b.Service.Name})
	}
	return set, nil
}

// ServeHTTP forwards r to an endpoint, or answers 503 when there is none.
// The draw is random rather than round robin so it needs no lock; over many
// requests it converges on the weights.
func (b *backendSet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch len(b.groups) {
	case 0:
		plain(w, http.StatusServiceUnavailable, "no ready backend for "+b.svc.String()+"\n")
		return
	case 1:
		b.groups[0].serve(w, r)
		return
	}
	x := rand.Int64N(b.total)
	for i := range b.groups {
		if x < b.groups[i].upTo {
			b.groups[i].serve(w, r)
			return
		}
	}
}
