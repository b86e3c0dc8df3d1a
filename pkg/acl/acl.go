// Package acl decides whether a request, connection or datagram may reach
// a route under access control (issue 5): the route's Allow rules, which
// the builder made from SMI TrafficTargets, are compiled once per table, and
// each check answers Allowed or the Reason for a denial.
//
// The package is pure: it knows nothing of sockets, metrics or the network.
// The caller names the source (its namespace and service account, found
// from the connection's source IP by pkg/proxy/identity) and, for HTTP,
// passes the request. Checks that allow do not allocate.
//
// Semantics (docs/acl.md):
//   - Default deny: a route with no Allow admits nobody.
//   - A source with no identity (an address that is no known pod) is denied.
//   - HTTP: an Allow admits its Sources for requests that satisfy one of
//     its Matches; an Allow with no Matches (a TrafficTarget with no rules)
//     admits nothing. Within a match, the path regex, method list and
//     header regexes must all hold.
//   - TCP and UDP: an Allow admits its Sources.
package acl

import (
	"fmt"
	"regexp"

	"github.com/nodemesh/nodemesh/pkg/httpmatch"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// Reason is the outcome of a check: Allowed, or why it was denied. Its
// String values are the bounded label values of the denial metrics.
type Reason uint8

// Reasons a check can give.
const (
	// Allowed means an Allow rule admits the source.
	Allowed Reason = iota
	// NoIdentity: the source address is no pod the table knows (a node,
	// a hostNetwork or deleted pod, an address outside the cluster), so no
	// TrafficTarget can name it.
	NoIdentity
	// NotAllowed: no TrafficTarget names the source's service account for
	// this destination.
	NotAllowed
	// NoMatchingRule: a TrafficTarget names the source, but none of its
	// rules matches this request (path, method, headers), or it has no rules.
	NoMatchingRule
)

var reasonNames = [...]string{
	Allowed:        "allowed",
	NoIdentity:     "no-identity",
	NotAllowed:     "not-allowed",
	NoMatchingRule: "no-matching-rule",
}

// String returns the metric label value of r: "allowed", "no-identity",
// "not-allowed" or "no-matching-rule".
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason-%d", r)
}

// DenyReasons lists every Reason a check can deny with, in order.
func DenyReasons() []Reason { return []Reason{NoIdentity, NotAllowed, NoMatchingRule} }

// Policy is the compiled access control of one table. It is immutable and
// safe for concurrent use. Routes are looked up by service port (HTTP) or
// proxy port (TCP, UDP) of the table it was compiled from.
type Policy struct {
	http   map[httpKey]*HTTPRule
	tcp    map[int32]*StreamRule // by proxy port
	udp    map[int32]*StreamRule
	shared *matcherCache
}

// httpKey names an HTTP route as the table does: a service port. Routes are
// found by name rather than by address because the HTTP router keeps its
// own copy of a route that did not change between tables.
type httpKey struct {
	svc  table.ServiceRef
	port int32
}

// Compile compiles the Allow rules of every route of t. prev, the policy of
// the table being replaced (or nil), lends its compiled matches and
// regular expressions: a reload of a large table recompiles only what is
// new. t must not be modified afterwards. A regular expression that does
// not compile is an error naming its route (table.Validate reports the
// same, so a validated table compiles).
func Compile(t *table.Table, prev *Policy) (*Policy, error) {
	var old *matcherCache
	if prev != nil {
		old = prev.shared
	}
	p := &Policy{
		http:   make(map[httpKey]*HTTPRule, len(t.HTTP)),
		tcp:    make(map[int32]*StreamRule, len(t.TCP)),
		udp:    make(map[int32]*StreamRule, len(t.UDP)),
		shared: newMatcherCache(old),
	}
	for i := range t.HTTP {
		r := &t.HTTP[i]
		rule, err := compileHTTP(r, p.shared)
		if err != nil {
			return nil, fmt.Errorf("http route %s port %d: %w", r.Service, r.Port, err)
		}
		p.http[httpKey{r.Service, r.Port}] = rule
	}
	for i := range t.TCP {
		p.tcp[t.TCP[i].ProxyPort] = compileStream(&t.TCP[i])
	}
	for i := range t.UDP {
		p.udp[t.UDP[i].ProxyPort] = compileStream(&t.UDP[i])
	}
	p.shared.forgetOld()
	return p, nil
}

// HTTP returns the rule of the HTTP route serving port of svc, or nil when
// the table has no such route. A nil Policy has no rules.
func (p *Policy) HTTP(svc table.ServiceRef, port int32) *HTTPRule {
	if p == nil {
		return nil
	}
	return p.http[httpKey{svc, port}]
}

// TCP returns the rule of the TCP route on proxyPort, or nil when the table
// has none.
func (p *Policy) TCP(proxyPort int32) *StreamRule {
	if p == nil {
		return nil
	}
	return p.tcp[proxyPort]
}

// UDP returns the rule of the UDP route on proxyPort, or nil when the table
// has none.
func (p *Policy) UDP(proxyPort int32) *StreamRule {
	if p == nil {
		return nil
	}
	return p.udp[proxyPort]
}

// StreamRule is the compiled Allow of one TCP or UDP route.
type StreamRule struct {
	route   *table.StreamRoute
	sources map[table.Identity]struct{}
}

func compileStream(r *table.StreamRoute) *StreamRule {
	s := &StreamRule{route: r, sources: map[table.Identity]struct{}{}}
	for _, a := range r.Allow {
		for _, id := range a.Sources {
			s.sources[id] = struct{}{}
		}
	}
	return s
}

// Route returns the route the rule belongs to.
func (s *StreamRule) Route() *table.StreamRoute { return s.route }

// Check decides for a connection or datagram from src; nil src means the
// source has no identity.
func (s *StreamRule) Check(src *table.Identity) Reason {
	if src == nil {
		return NoIdentity
	}
	if _, ok := s.sources[*src]; ok {
		return Allowed
	}
	return NotAllowed
}

// matcherCache shares compiled matches and regular expressions between the
// routes of one table, and hands them on to the next table's Compile.
type matcherCache struct {
	matchers map[string]*httpmatch.Matcher
	regexps  map[string]*regexp.Regexp
	old      *matcherCache
}

func newMatcherCache(old *matcherCache) *matcherCache {
	return &matcherCache{matchers: map[string]*httpmatch.Matcher{}, regexps: map[string]*regexp.Regexp{}, old: old}
}

// regexp compiles expr once per table, reusing the previous table's.
func (c *matcherCache) regexp(expr string) (*regexp.Regexp, error) {
	if re, ok := c.regexps[expr]; ok {
		return re, nil
	}
	re, ok := (*regexp.Regexp)(nil), false
	if c.old != nil {
		re, ok = c.old.regexps[expr]
	}
	if !ok {
		var err error
		if re, err = regexp.Compile(expr); err != nil {
			return nil, err
		}
	}
	c.regexps[expr] = re
	return re, nil
}

// forgetOld drops the link to the previous cache so it can be collected.
func (c *matcherCache) forgetOld() { c.old = nil }
