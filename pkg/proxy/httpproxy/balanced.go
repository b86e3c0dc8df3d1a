package httpproxy

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/nodemesh/nodemesh/pkg/proxy/balance"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// balancedBackends forwards each request to the endpoint a balance.Set
// picks (locality, outlier ejection) and tells the Set how it went. It
// replaces backendSet + oxy round robin on routes with such a policy only.
type balancedBackends struct {
	set       *balance.Set
	urls      []*url.URL // by balance.Endpoint.Index
	names     []string   // backend service by Endpoint.Index (edgerequest.go)
	fwd       http.Handler
	noBackend string
}

func (rt *Router) newBalancedBackends(p *routePolicy, bs []table.Backend, r *table.HTTPRoute, fwd http.Handler) (*balancedBackends, error) {
	svc := r.Service
	opts := balance.Options{Locality: r.Middleware.Locality, Node: rt.opts.Node, Zone: p.zone, Outlier: r.Middleware.Outlier}
	if opts.Outlier != nil {
		pm := rt.policy.forService(svc)
		ejections, overflow := pm.ejections(), pm.overflow()
		opts.OnEject = func(string, time.Duration) { ejections.Inc() }
		opts.OnOverflow = func(string) { overflow.Inc() }
	}
	set, err := balance.New(bs, opts, p.states)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if r.Scheme == table.SchemeHTTPS {
		scheme = "https"
	}
	b := &balancedBackends{set: set, fwd: fwd, noBackend: "no ready backend for " + svc.String() + "\n"}
	for _, e := range set.Endpoints() {
		u, err := url.Parse(scheme + "://" + e.Address)
		if err != nil || u.Port() == "" {
			return nil, fmt.Errorf("endpoint %q is not ip:port", e.Address)
		}
		b.urls = append(b.urls, u)
	}
	b.names = backendNames(bs, set)
	p.sets = append(p.sets, set)
	return b, nil
}

// ServeHTTP forwards r to a picked endpoint. A retry of the same request
// avoids the endpoints it already tried. A gateway error (a 5xx from the
// backend, or the proxy's own 502/504/retry marker after a connect or
// network failure) counts towards the endpoint's ejection.
func (b *balancedBackends) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rs := retryStateFrom(r.Context())
	var avoid []*balance.Endpoint
	if rs != nil {
		avoid = rs.tried
	}
	e := b.set.Pick(avoid)
	if e == nil {
		plain(w, http.StatusServiceUnavailable, b.noBackend)
		return
	}
	if rs != nil {
		rs.tried = append(rs.tried, e)
	}
	if e.Index < len(b.names) {
		markBackend(w, r, b.names[e.Index])
	}
	// A shallow copy with the endpoint's URL, as oxy's round robin does;
	// the forwarder clones it before changing anything.
	out := new(http.Request)
	*out = *r
	out.URL = b.urls[e.Index]
	sw := getStatusWriter(w)
	defer func() {
		code := sw.status()
		putStatusWriter(sw)
		if code != StatusClientClosedRequest { // a client that left says nothing of the endpoint
			b.set.Observe(e, code >= 500)
		}
		b.set.Release(e)
	}()
	b.fwd.ServeHTTP(sw, out)
}
