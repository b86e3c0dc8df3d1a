package httpmatch

import (
	"regexp"
	"regexp/syntax"
	"strings"
)

// pathTest is a compiled path regex. Most pathRegexes are a literal prefix
// ("^/api") or a literal path ("^/healthz$"); those are tested with a string
// comparison, some fifty times faster than running the regexp.
type pathTest struct {
	literal string
	exact   bool           // literal must be the whole path, not a prefix
	re      *regexp.Regexp // nil when literal says it all
}

// newPathTest recognises an anchored literal in the parsed expression tree
// (compiled as re; nil when not at hand, which only means no literal): one
// or more start anchors, a case-sensitive literal, optionally an end anchor.
func newPathTest(tree *syntax.Regexp, re *regexp.Regexp) *pathTest {
	t := &pathTest{re: re}
	if tree == nil {
		return t
	}
	parsed := tree.Simplify()
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
