package acl

import (
	"fmt"
	"net/http"
	"path"
	"regexp"
	"regexp/syntax"
	"strings"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// HTTPRule is the compiled Allow of one HTTP route: for each source
// identity, the matches that admit its requests.
type HTTPRule struct {
	route    *table.HTTPRoute
	bySource map[table.Identity]*grant
}

// grant is what one source may do on one route: the union of the matches
// of every Allow that names it. An empty grant (named only by Allows with
// no matches) admits nothing.
type grant struct {
	any     bool // one of the matches is empty: every request
	matches []*matcher
}

func compileHTTP(r *table.HTTPRoute, cache *matcherCache) (*HTTPRule, error) {
	rule := &HTTPRule{route: r, bySource: map[table.Identity]*grant{}}
	for i, a := range r.Allow {
		compiled := make([]*matcher, 0, len(a.Matches))
		for j, m := range a.Matches {
			c, err := cache.matcher(m)
			if err != nil {
				return nil, fmt.Errorf("allow %d match %d: %w", i, j, err)
			}
			compiled = append(compiled, c)
		}
		for _, id := range a.Sources {
			g := rule.bySource[id]
			if g == nil {
				g = &grant{}
				rule.bySource[id] = g
			}
			for _, c := range compiled {
				g.add(c)
			}
		}
	}
	return rule, nil
}

func (g *grant) add(m *matcher) {
	if m.empty() {
		g.any = true
		g.matches = nil // every request passes; the others add nothing
		return
	}
	if g.any {
		return
	}
	for _, have := range g.matches {
		if have == m { // matchers are shared per table, so equal means same
			return
		}
	}
	g.matches = append(g.matches, m)
}

// Route returns the route the rule belongs to.
func (h *HTTPRule) Route() *table.HTTPRoute { return h.route }

// Check decides for request r from src; nil src means the source has no
// identity. Only the method, the path, the headers and the Host of r are
// read; the identity of the client is never taken from the request.
func (h *HTTPRule) Check(src *table.Identity, r *http.Request) Reason {
	if src == nil {
		return NoIdentity
	}
	g := h.bySource[*src]
	if g == nil {
		return NotAllowed
	}
	if g.any {
		return Allowed
	}
	if len(g.matches) == 0 {
		return NoMatchingRule
	}
	p := requestPath(r)
	alt, odd := normalPath(p)
	for _, m := range g.matches {
		if m.matches(r, p) && (!odd || m.matchesPath(alt)) {
			return Allowed
		}
	}
	return NoMatchingRule
}

// matcher is a compiled table.HTTPMatch.
type matcher struct {
	path    *pathTest // nil: any path
	methods []string  // nil: any method
	headers []headerMatcher
}

type headerMatcher struct {
	name string // canonical
	host bool   // the Host header, which net/http keeps in Request.Host
	re   *regexp.Regexp
}

func (c *matcherCache) matcher(m table.HTTPMatch) (*matcher, error) {
	key := matchKey(m)
	if cm, ok := c.matchers[key]; ok {
		return cm, nil
	}
	if c.old != nil {
		if cm, ok := c.old.matchers[key]; ok {
			c.matchers[key] = cm
			return cm, nil
		}
	}
	cm := &matcher{}
	if m.PathRegex != "" {
		// SMI anchors pathRegex at the start of the path. Wrapping the whole
		// expression anchors every alternative: "^/a|/b" alone would let
		// "/b" match anywhere in the path.
		expr := "^(?:" + m.PathRegex + ")"
		re, err := c.regexp(expr)
		if err != nil {
			return nil, fmt.Errorf("pathRegex %q: %w", m.PathRegex, err)
		}
		cm.path = newPathTest(expr, re)
	}
	for _, meth := range m.Methods {
		if meth == "*" {
			cm.methods = nil
			break
		}
		cm.methods = append(cm.methods, meth)
	}
	for _, hm := range m.Headers {
		re, err := c.regexp(hm.Regex)
		if err != nil {
			return nil, fmt.Errorf("header %s regex %q: %w", hm.Name, hm.Regex, err)
		}
		name := http.CanonicalHeaderKey(hm.Name)
		cm.headers = append(cm.headers, headerMatcher{name: name, host: name == "Host", re: re})
	}
	c.matchers[key] = cm
	return cm, nil
}

// matchKey identifies a match by content, so equal matches of different
// routes share one compiled matcher.
func matchKey(m table.HTTPMatch) string {
	var b strings.Builder
	b.WriteString(m.PathRegex)
	for _, meth := range m.Methods {
		b.WriteByte(0)
		b.WriteString(meth)
	}
	for _, h := range m.Headers {
		b.WriteByte(1)
		b.WriteString(h.Name)
		b.WriteByte(0)
		b.WriteString(h.Regex)
	}
	return b.String()
}

func (m *matcher) empty() bool { return m.path == nil && m.methods == nil && len(m.headers) == 0 }

// matches reports whether r, whose path is p, satisfies every part of m.
func (m *matcher) matches(r *http.Request, p string) bool {
	if m.methods != nil && !contains(m.methods, r.Method) {
		return false
	}
	if !m.matchesPath(p) {
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

func (m *matcher) matchesPath(p string) bool { return m.path == nil || m.path.match(p) }

// pathTest is a compiled path regex. Most pathRegexes are a literal prefix
// ("^/api") or a literal path ("^/healthz$"); those are tested with a string
// comparison, some fifty times faster than running the regexp.
type pathTest struct {
	literal string
	exact   bool           // literal must be the whole path, not a prefix
	re      *regexp.Regexp // nil when literal says it all
}

// newPathTest recognises an anchored literal in expr (already compiled as
// re): one or more start anchors, a case-sensitive literal, optionally an
// end anchor.
func newPathTest(expr string, re *regexp.Regexp) *pathTest {
	t := &pathTest{re: re}
	parsed, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return t
	}
	parsed = parsed.Simplify()
	if parsed.Op != syntax.OpConcat {
		return t
	}
	subs := parsed.Sub
	anchors := 0
	for anchors < len(subs) && subs[anchors].Op == syntax.OpBeginText {
		anchors++
	}
	if anchors == 0 || anchors == len(subs) {
		return t
	}
	lit := subs[anchors]
	if lit.Op != syntax.OpLiteral || lit.Flags&syntax.FoldCase != 0 {
		return t
	}
	rest := subs[anchors+1:]
	switch {
	case len(rest) == 0:
	case len(rest) == 1 && rest[0].Op == syntax.OpEndText:
		t.exact = true
	default:
		return t
	}
	t.literal, t.re = string(lit.Rune), nil
	return t
}

func (t *pathTest) match(p string) bool {
	switch {
	case t.re != nil:
		return t.re.MatchString(p)
	case t.exact:
		return p == t.literal
	default:
		return strings.HasPrefix(p, t.literal)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// requestPath is the decoded path of r, "/" when the request has none
// (an absolute-form URI without a path).
func requestPath(r *http.Request) string {
	if r.URL == nil || r.URL.Path == "" {
		return "/"
	}
	return r.URL.Path
}

// normalPath returns the path a backend may act on after normalising p, and
// whether it differs from p. A path with dot segments ("/public/../admin"),
// doubled slashes or backslashes must be allowed both as sent and as
// normalised: a backend that cleans paths would otherwise serve "/admin"
// to a client allowed only "/public". Percent-encoded forms ("%2e%2e",
// "%2f") arrive decoded in p, so they are covered too. Clean paths, the
// common case, are returned without allocating.
func normalPath(p string) (string, bool) {
	if !oddPath(p) {
		return p, false
	}
	n := path.Clean(strings.ReplaceAll(p, `\`, "/"))
	if strings.HasSuffix(p, "/") && n != "/" {
		n += "/"
	}
	return n, n != p
}

// oddPath reports whether p has a dot segment, an empty segment or a
// backslash.
func oddPath(p string) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			return true
		case '/':
			if i+1 < len(p) && p[i+1] == '/' {
				return true
			}
		case '.':
			// A segment of "." or "..": the dots run from a slash (or the
			// start) to a slash (or the end).
			start := i == 0 || p[i-1] == '/' || p[i-1] == '\\'
			j := i + 1
			if j < len(p) && p[j] == '.' {
				j++
			}
			if start && (j == len(p) || p[j] == '/' || p[j] == '\\') {
				return true
			}
		}
	}
	return false
}
