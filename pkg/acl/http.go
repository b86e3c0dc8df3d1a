package acl

import (
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/nodemesh/nodemesh/pkg/httpmatch"
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
	matches []*httpmatch.Matcher
}

func compileHTTP(r *table.HTTPRoute, cache *matcherCache) (*HTTPRule, error) {
	rule := &HTTPRule{route: r, bySource: map[table.Identity]*grant{}}
	for i, a := range r.Allow {
		compiled := make([]*httpmatch.Matcher, 0, len(a.Matches))
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

func (g *grant) add(m *httpmatch.Matcher) {
	if m.Empty() {
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
	p := httpmatch.Path(r)
	alt, odd := normalPath(p)
	for _, m := range g.matches {
		if m.Match(r, p) && (!odd || m.MatchPath(alt)) {
			return Allowed
		}
	}
	return NoMatchingRule
}

func (c *matcherCache) matcher(m table.HTTPMatch) (*httpmatch.Matcher, error) {
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
	cm, err := httpmatch.Compile(m, c.regexp)
	if err != nil {
		return nil, err
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
