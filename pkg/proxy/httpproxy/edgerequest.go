package httpproxy

import (
	"context"
	"net/http"
	"time"

	"github.com/nodemesh/nodemesh/pkg/proxy/accesslog"
	"github.com/nodemesh/nodemesh/pkg/proxy/balance"
	"github.com/nodemesh/nodemesh/pkg/proxy/edges"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// edgeMark carries up to a route's instrument what the chain below it
// learnt about one request: the backend the split chose and the retries
// made. Backend choice happens deep in the chain (backendSet,
// balancedBackends), status and timing at the top.
//
// On a plain route the selector gets the instrument's own statusWriter, so
// the mark rides in it at no cost. A route with middleware may hand the
// selector another writer (oxy's buffer and breaker wrap it), so there the
// instrument puts the mark in the request context: two allocations, on
// routes that already pay for their middleware.
type edgeMark struct {
	backend string
	retries int
}

type edgeMarkKey struct{}

// carries reports whether the instrument of next must carry the mark in
// the context: anything but the bare selector may wrap the writer.
func (rm *routeMetrics) carries(next http.Handler) bool {
	if rm.edge == nil {
		return false
	}
	_, bare := next.(*selector)
	return !bare
}

// markFor readies sw's mark for one request and returns the request to
// pass on (with the mark in its context when carry).
func (sw *statusWriter) markFor(r *http.Request, carry bool) (*http.Request, *edgeMark) {
	if !carry {
		sw.top = true
		return r, &sw.mark
	}
	m := new(edgeMark)
	return r.WithContext(context.WithValue(r.Context(), edgeMarkKey{}, m)), m
}

// markOf finds the mark of the request being served through w and r, nil
// when nobody asked for one.
func markOf(w http.ResponseWriter, r *http.Request) *edgeMark {
	if sw, ok := w.(*statusWriter); ok && sw.top {
		return &sw.mark
	}
	m, _ := r.Context().Value(edgeMarkKey{}).(*edgeMark)
	return m
}

// markBackend records the backend chosen for the request.
func markBackend(w http.ResponseWriter, r *http.Request, name string) {
	if m := markOf(w, r); m != nil {
		m.backend = name
	}
}

// done records one finished request: edge metrics and the access log. A
// nil edgeService does nothing.
func (es *edgeService) done(r *http.Request, mark *edgeMark, code int, sent int64, start time.Time, d time.Duration) {
	if es == nil {
		return
	}
	m := es.m
	srcs := m.sources.Load()
	src := srcs.LookupRemote(r.RemoteAddr)
	backend := mark.backend
	if backend == "" {
		backend = edges.NoBackend
	}
	if m.on {
		e := es.backend(backend).cache.Get(srcs, src)
		e.count(m, code).Inc()
		e.duration.Observe(d.Seconds())
	}
	if m.log.Allow() {
		es.log(r, src, backend, mark.retries, code, sent, start, d)
	}
}

// refused records a request the router answered itself before the route's
// chain (access control's 403).
func (es *edgeService) refused(r *http.Request, code int) {
	if es == nil {
		return
	}
	var mark edgeMark
	es.done(r, &mark, code, 0, time.Now(), 0)
}

// log writes the access log entry of one request.
func (es *edgeService) log(r *http.Request, src *edges.Source, backend string, retries, code int, sent int64, start time.Time, d time.Duration) {
	e := accesslog.Entry{
		Time: start, Protocol: "http",
		SourceIP: r.RemoteAddr, SourceNamespace: src.Namespace, SourceWorkload: src.Workload, SourceServiceAccount: src.ServiceAccount,
		Namespace: es.svc.Namespace, Service: es.svc.Name, Backend: backend,
		Method: r.Method, Host: r.Host, Path: r.URL.Path,
		Code: code, Duration: d, BytesSent: sent, Retries: retries,
		TraceID: traceID(r.Header),
	}
	if r.ContentLength > 0 {
		e.BytesReceived = r.ContentLength
	}
	es.m.log.Log(&e)
}

// traceID returns the trace id of a W3C traceparent header
// ("00-<32 hex>-<16 hex>-<2 hex>"), else of a B3 header, else "".
func traceID(h http.Header) string {
	if v := h.Get("Traceparent"); len(v) >= 55 && v[2] == '-' && v[35] == '-' {
		return v[3:35]
	}
	if v := h.Get("X-B3-Traceid"); v != "" && len(v) <= 32 {
		return v
	}
	if v := h.Get("B3"); v != "" {
		if i := indexByte(v, '-'); i > 0 && i <= 32 {
			return v[:i]
		}
	}
	return ""
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// serve sends r to the backend g, marking it for edge metrics. The
// endpoint is oxy's round robin's pick, as its ServeHTTP would make it; but
// where that ServeHTTP hands the forwarder a shallow copy of the request
// with the endpoint's URL (a 250-byte allocation per request, about a
// tenth of what a plain request allocates), r's URL is swapped for the
// call and put back after it. r is this handler's while it runs, and every
// forwarder copies it before changing anything else.
func (g *weighted) serve(w http.ResponseWriter, r *http.Request) {
	markBackend(w, r, g.name)
	u, err := g.lb.NextServer()
	if err != nil {
		g.lb.ServeHTTP(w, r) // oxy's answer to an empty round robin
		return
	}
	orig := r.URL
	defer func() { r.URL = orig }()
	r.URL = u
	g.fwd.ServeHTTP(w, r)
}

// backendNames returns the backend service of each endpoint of set, by
// Endpoint.Index: balance.New numbers the endpoints of the backends that
// take traffic (weight > 0, some endpoints) in table order. Nil when set
// does not line up with bs, so no wrong backend is ever reported.
func backendNames(bs []table.Backend, set *balance.Set) []string {
	var names []string
	for _, b := range bs {
		if b.Weight <= 0 || len(b.Endpoints) == 0 {
			continue
		}
		for range b.Endpoints {
			names = append(names, b.Service.Name)
		}
	}
	eps := set.Endpoints()
	if len(eps) != len(names) {
		return nil
	}
	i := 0
	for _, b := range bs {
		if b.Weight <= 0 || len(b.Endpoints) == 0 {
			continue
		}
		for _, e := range b.Endpoints {
			if eps[i].Address != e.Address {
				return nil
			}
			i++
		}
	}
	return names
}
