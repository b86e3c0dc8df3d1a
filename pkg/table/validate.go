package table

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/vulcand/oxy/v2/cbreaker"
)

// MaxRetryAttempts is the largest Middleware.RetryAttempts a table may ask
// for. oxy's buffer stops retrying after 10 attempts whatever it is told.
const MaxRetryAttempts = 10

// Validate reports every semantic problem of t at once, each naming the
// route it concerns, joined with errors.Join. A nil error means the proxy
// can apply t as a whole. It does not require the producer's sort order, so
// a hand-written table file validates too.
func Validate(t *Table) error {
	if t == nil {
		return errors.New("table is nil")
	}
	v := &validator{cbExprs: map[string]error{}, addrs: map[string]bool{}, seen: map[ServiceRef]bool{}}
	if t.Schema != SchemaVersion {
		v.addf("table", "unknown schema %d (this proxy knows schema %d)", t.Schema, SchemaVersion)
	}
	v.http(t.HTTP)
	v.streams("tcp", t.TCP)
	v.streams("udp", t.UDP)
	v.pods(t.Pods)
	v.nodes(t.Nodes)
	return errors.Join(v.errs...)
}

type validator struct {
	errs    []error
	cbExprs map[string]error // circuit-breaker expressions already parsed
	// Scratch maps reused (cleared) for every backend list: a table of
	// 10,000 endpoints would otherwise allocate thousands of small maps.
	addrs map[string]bool
	seen  map[ServiceRef]bool
}

func (v *validator) addf(where, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
}

type hostPort struct {
	host string
	port int32
}

func (v *validator) http(routes []HTTPRoute) {
	// Sized up front: a table of 1,000 services would otherwise regrow
	// them several times on every reload (BenchmarkReloadLargeTable).
	hosts := 0
	for i := range routes {
		hosts += len(routes[i].Hosts)
	}
	owner := make(map[hostPort]string, hosts) // (host, port) -> route that serves it
	defaults := map[string]string{}           // host -> route that is its DefaultPort
	routeSeen := make(map[routeKey]bool, len(routes))
	for i := range routes {
		r := &routes[i]
		where := "http route " + r.Service.String() + " port " + strconv.Itoa(int(r.Port))
		v.service(where, r.Service)
		if !validPort(r.Port) {
			v.addf(where, "port %d is out of range 1-65535", r.Port)
		}
		sp := routeKey{r.Service, r.Port}
		if routeSeen[sp] {
			v.addf(where, "duplicate route: the service port appears twice")
		}
		routeSeen[sp] = true
		if len(r.Hosts) == 0 {
			v.addf(where, "no hosts")
		}
		for _, h := range r.Hosts {
			if err := checkHost(h); err != nil {
				v.addf(where, "host %q: %v", h, err)
				continue
			}
			k := hostPort{h, r.Port}
			if other, ok := owner[k]; ok && other != where {
				v.addf(where, "duplicate host %s port %d: already served by %s", h, r.Port, other)
			}
			owner[k] = where
			if r.DefaultPort {
				if other, ok := defaults[h]; ok && other != where {
					v.addf(where, "host %s has two default ports: %s also sets defaultPort", h, other)
				}
				defaults[h] = where
			}
		}
		switch r.Scheme {
		case SchemeHTTP, SchemeHTTPS, SchemeH2C:
		default:
			v.addf(where, "unknown scheme %q (want http, https or h2c)", r.Scheme)
		}
		names := map[string]bool{}
		for j := range r.Matches {
			m := &r.Matches[j]
			mwhere := fmt.Sprintf("%s match %d %q", where, j, m.Name)
			if names[m.Name] {
				v.addf(mwhere, "duplicate match name")
			}
			names[m.Name] = true
			v.match(mwhere, m.Match)
			v.backends(mwhere, m.Backends)
		}
		v.backends(where, r.Backends)
		v.middleware(where, r.Middleware)
		for j, a := range r.Allow {
			awhere := fmt.Sprintf("%s allow %d", where, j)
			v.identities(awhere, a.Sources)
			for k, m := range a.Matches {
				v.match(fmt.Sprintf("%s match %d", awhere, k), m)
			}
		}
	}
}

func (v *validator) match(where string, m HTTPMatch) {
	if m.PathRegex != "" {
		if _, err := regexp.Compile(m.PathRegex); err != nil {
			v.addf(where, "bad pathRegex: %v", err)
		}
	}
	for _, meth := range m.Methods {
		if meth != "*" && (!isToken(meth) || strings.ToUpper(meth) != meth) {
			v.addf(where, "bad method %q (want an upper-case method name or *)", meth)
		}
	}
	for _, h := range m.Headers {
		if !isToken(h.Name) {
			v.addf(where, "bad header name %q", h.Name)
		}
		if _, err := regexp.Compile(h.Regex); err != nil {
			v.addf(where, "header %s: bad regex: %v", h.Name, err)
		}
	}
}

func (v *validator) backends(where string, bs []Backend) {
	var sum int64
	clear(v.seen)
	for _, b := range bs {
		// Built only on error: the happy path of a large table formats
		// nothing per backend.
		bwhere := func() string { return where + " backend " + b.Service.String() }
		if b.Service.Namespace == "" || b.Service.Name == "" {
			v.service(bwhere(), b.Service)
		}
		if v.seen[b.Service] {
			v.addf(bwhere(), "duplicate backend")
		}
		v.seen[b.Service] = true
		if b.Weight < 0 {
			v.addf(bwhere(), "negative weight %d", b.Weight)
		} else {
			sum += int64(b.Weight)
		}
		clear(v.addrs)
		for _, e := range b.Endpoints {
			ap, err := netip.ParseAddrPort(e.Address)
			if err != nil || ap.Port() == 0 {
				v.addf(bwhere(), "bad endpoint address %q (want ip:port)", e.Address)
				continue
			}
			if v.addrs[e.Address] {
				v.addf(bwhere(), "duplicate endpoint %s", e.Address)
			}
			v.addrs[e.Address] = true
		}
	}
	if sum == 0 && hasEndpoints(bs) {
		v.addf(where, "backend weights sum to 0 but there are endpoints")
	}
}

func hasEndpoints(bs []Backend) bool {
	for _, b := range bs {
		if len(b.Endpoints) > 0 {
			return true
		}
	}
	return false
}

func (v *validator) middleware(where string, m Middleware) {
	if m.RetryAttempts < 0 || m.RetryAttempts > MaxRetryAttempts {
		v.addf(where, "retryAttempts %d is out of range 0-%d", m.RetryAttempts, MaxRetryAttempts)
	}
	if m.CircuitBreaker != "" {
		err, ok := v.cbExprs[m.CircuitBreaker]
		if !ok {
			// oxy exports no parser for its expressions: building a breaker
			// is the only way to learn whether it accepts one.
			_, err = cbreaker.New(http.NotFoundHandler(), m.CircuitBreaker)
			v.cbExprs[m.CircuitBreaker] = err
		}
		if err != nil {
			v.addf(where, "bad circuitBreaker expression %q: %v", m.CircuitBreaker, err)
		}
	}
	if rl := m.RateLimit; rl != nil && (rl.Average <= 0 || rl.Burst <= 0) {
		v.addf(where, "rateLimit needs average > 0 and burst > 0 (got %d and %d)", rl.Average, rl.Burst)
	}
	v.policy(where, m)
}

func (v *validator) streams(proto string, routes []StreamRoute) {
	owner := map[int32]string{}
	for _, r := range routes {
		where := fmt.Sprintf("%s route %s port %d", proto, r.Service, r.Port)
		v.service(where, r.Service)
		if !validPort(r.Port) {
			v.addf(where, "port %d is out of range 1-65535", r.Port)
		}
		if !validPort(r.ProxyPort) {
			v.addf(where, "proxyPort %d is out of range 1-65535", r.ProxyPort)
		} else if other, ok := owner[r.ProxyPort]; ok {
			v.addf(where, "duplicate %s proxyPort %d: already used by %s", proto, r.ProxyPort, other)
		} else {
			owner[r.ProxyPort] = where
		}
		v.backends(where, r.Backends)
		for j, a := range r.Allow {
			v.identities(fmt.Sprintf("%s allow %d", where, j), a.Sources)
		}
		v.streamPolicy(where, r)
	}
}

func (v *validator) pods(pods []Pod) {
	seen := make(map[netip.Addr]bool, len(pods))
	for _, p := range pods {
		// Named only on error: a table lists every pod of the mesh.
		where := func() string { return fmt.Sprintf("pod %s/%s", p.Namespace, p.Name) }
		ip, err := netip.ParseAddr(p.IP)
		if err != nil {
			v.addf(where(), "bad ip %q", p.IP)
			continue
		}
		if seen[ip] {
			v.addf(where(), "duplicate pod ip %s", p.IP)
		}
		seen[ip] = true
	}
}

func (v *validator) service(where string, s ServiceRef) {
	if s.Namespace == "" || s.Name == "" {
		v.addf(where, "service needs a namespace and a name")
	}
}

func (v *validator) identities(where string, ids []Identity) {
	for _, id := range ids {
		if id.Namespace == "" || id.ServiceAccount == "" {
			v.addf(where, "source identity needs a namespace and a serviceAccount (got %q/%q)", id.Namespace, id.ServiceAccount)
		}
	}
}

func validPort(p int32) bool { return p >= 1 && p <= 65535 }

// checkHost accepts an IP literal or a lower-case DNS name without port or
// trailing dot: the form the router looks hosts up in.
func checkHost(h string) error {
	if h == "" {
		return errors.New("empty")
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	if len(h) > 253 {
		return errors.New("longer than 253 characters")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("not a DNS name (empty or over-long label, or a trailing dot)")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("character %s not allowed (want lower-case letters, digits, '-')", strconv.QuoteRune(rune(c)))
			}
		}
	}
	return nil
}

// isToken reports whether s is a non-empty RFC 9110 token (method and header
// names).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
