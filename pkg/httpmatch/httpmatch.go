// Package httpmatch compiles a table.HTTPMatch (an SMI HTTPRouteGroup
// match: a path regex anchored at the start of the path, methods, header
// regexes) into a Matcher. The HTTP router's A/B rules and the access
// control's TrafficTarget rules both use it, so one match means the same
// thing on both sides.
package httpmatch

import (
	"fmt"
	"net/http"
	"regexp"
	"regexp/syntax"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// Anchor returns pathRegex anchored at the start of the path as SMI means
// it: every alternative, not only the first. A bare "^" prefix is not
// enough ("^/a|/b" lets "/b" match anywhere in the path), so an expression
// is wrapped as "^(?:expr)" unless it, or "^" followed by it, is anchored as
// a whole ("^/api"; "/healthz$" as "^/healthz$"; "^/a|^/b"), which keeps
// tables readable. An invalid expression is an error, before any wrapping,
// so that no text can close the group early.
func Anchor(pathRegex string) (string, error) {
	expr, _, err := anchor(pathRegex)
	return expr, err
}

// anchor is Anchor that also returns the parsed expression, when it parsed
// the one it returns, for newPathTest.
func anchor(pathRegex string) (string, *syntax.Regexp, error) {
	tree, err := syntax.Parse(pathRegex, syntax.Perl)
	if err != nil {
		return "", nil, err
	}
	if anchored(tree) {
		return pathRegex, tree, nil
	}
	// Prefixing "^" anchors the whole expression only when it has no
	// top-level alternation, which the parsed tree cannot tell ("a|b"
	// parses as the class [ab]), so parse the result and look.
	if tree, err := syntax.Parse("^"+pathRegex, syntax.Perl); err == nil && anchored(tree) {
		return "^" + pathRegex, tree, nil
	}
	return "^(?:" + pathRegex + ")", nil, nil
}

// anchored reports whether every match of re starts at the start of the
// text. It errs towards false, which only costs a harmless wrap.
func anchored(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpBeginText:
		return true
	case syntax.OpConcat:
		return len(re.Sub) > 0 && anchored(re.Sub[0])
	case syntax.OpCapture:
		return anchored(re.Sub[0])
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			if !anchored(sub) {
				return false
			}
		}
		return len(re.Sub) > 0
	}
	return false
}

// Matcher is a compiled table.HTTPMatch. It is safe for concurrent use and
// matches without allocating.
type Matcher struct {
	path    *pathTest // nil: any path
	methods []string  // nil: any method
	headers []header
}

type header struct {
	name string // canonical
	host bool   // the Host header, which net/http keeps in Request.Host
	re   *regexp.Regexp
}

// Compile compiles m. compile compiles each regular expression; nil means
// regexp.Compile (the access control passes a cache that the routes of a
// table, and the next table, share).
func Compile(m table.HTTPMatch, compile func(expr string) (*regexp.Regexp, error)) (*Matcher, error) {
	if compile == nil {
		compile = regexp.Compile
	}
	c := &Matcher{}
	if m.PathRegex != "" {
		expr, tree, err := anchor(m.PathRegex)
		if err != nil {
			return nil, fmt.Errorf("pathRegex %q: %w", m.PathRegex, err)
		}
		re, err := compile(expr)
		if err != nil {
			return nil, fmt.Errorf("pathRegex %q: %w", m.PathRegex, err)
		}
		c.path = newPathTest(tree, re)
	}
	for _, meth := range m.Methods {
		if meth == "*" {
			c.methods = nil
			break
		}
		c.methods = append(c.methods, meth)
	}
	for _, h := range m.Headers {
		re, err := compile(h.Regex)
		if err != nil {
			return nil, fmt.Errorf("header %s regex %q: %w", h.Name, h.Regex, err)
		}
		name := http.CanonicalHeaderKey(h.Name)
		c.headers = append(c.headers, header{name: name, host: name == "Host", re: re})
	}
	return c, nil
}

// Empty reports whether m matches every request.
func (m *Matcher) Empty() bool { return m.path == nil && m.methods == nil && len(m.headers) == 0 }

// Match reports whether r, whose path is path (see Path), satisfies every
// part of m: one of its methods, its path regex, and each header regex
// against one of the header's values.
func (m *Matcher) Match(r *http.Request, path string) bool {
	if m.methods != nil && !contains(m.methods, r.Method) {
		return false
	}
	if !m.MatchPath(path) {
		return false
	}
	for i := range m.headers {
		h := &m.headers[i]
		if h.host {
			if !h.re.MatchString(r.Host) {
				return false
			}
			continue
		}
		ok := false
		for _, v := range r.Header[h.name] {
			if h.re.MatchString(v) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// MatchPath reports whether path satisfies m's path regex.
func (m *Matcher) MatchPath(path string) bool { return m.path == nil || m.path.match(path) }

// Path is the decoded path of r that matches are tested against: "/" when
// the request has none (an absolute-form URI without a path).
func Path(r *http.Request) string {
	if r.URL == nil || r.URL.Path == "" {
		return "/"
	}
	return r.URL.Path
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
