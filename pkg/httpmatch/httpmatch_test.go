package httpmatch

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/table"
)

func TestAnchorAnchorsEveryAlternative(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"^/api", "^/api"},
		{"^/healthz$", "^/healthz$"},
		{"^/a$|^/b", "^/a$|^/b"},
		{"(^/a)|^/b", "(^/a)|^/b"},
		{"^/a|(?:/b)", "^(?:^/a|(?:/b))"},
		{"a|b", "^(?:a|b)"},
		{"/api", "^/api"},
		{"/healthz$", "^/healthz$"},
		{"/a|/b", "^(?:/a|/b)"},
		{"^/a|/b", "^(?:^/a|/b)"},
		{"(?i)/api", "^(?i)/api"},
		{".*", "^.*"},
		{"/a(b|c)", "^/a(b|c)"},
	} {
		got, err := Anchor(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Anchor(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	// Invalid expressions are refused before wrapping, so none can close
	// the group early and match every path.
	for _, bad := range []string{"/a)|(.*", "(", `\`, "[a"} {
		if got, err := Anchor(bad); err == nil {
			t.Errorf("Anchor(%q) = %q, want an error", bad, got)
		}
	}
}

func TestMatchParts(t *testing.T) {
	for _, tt := range []struct {
		name  string
		match table.HTTPMatch
		req   *http.Request
		want  bool
	}{
		{"path prefix", table.HTTPMatch{PathRegex: "/api"}, req("GET", "/api/x"), true},
		{"path elsewhere", table.HTTPMatch{PathRegex: "/api"}, req("GET", "/x/api"), false},
		{"second alternative at the start", table.HTTPMatch{PathRegex: "/a|/b"}, req("GET", "/b/c"), true},
		{"second alternative not at the start", table.HTTPMatch{PathRegex: "/a|/b"}, req("GET", "/x/b"), false},
		{"caret only on the first alternative", table.HTTPMatch{PathRegex: "^/a|/b"}, req("GET", "/x/b"), false},
		{"method", table.HTTPMatch{Methods: []string{"GET", "HEAD"}}, req("HEAD", "/"), true},
		{"other method", table.HTTPMatch{Methods: []string{"GET"}}, req("POST", "/"), false},
		{"any method", table.HTTPMatch{Methods: []string{"GET", "*"}}, req("DELETE", "/"), true},
		{"header", table.HTTPMatch{Headers: []table.HeaderMatch{{Name: "x-user", Regex: "^admin$"}}}, req("GET", "/", "X-User", "admin"), true},
		{"header any value", table.HTTPMatch{Headers: []table.HeaderMatch{{Name: "X-User", Regex: "^admin$"}}}, req("GET", "/", "X-User", "bob", "X-User", "admin"), true},
		{"header missing", table.HTTPMatch{Headers: []table.HeaderMatch{{Name: "X-User", Regex: "."}}}, req("GET", "/"), false},
		{"host header", table.HTTPMatch{Headers: []table.HeaderMatch{{Name: "host", Regex: `^web\.shop\.mesh$`}}}, req("GET", "/"), true},
		{"all parts", table.HTTPMatch{PathRegex: "^/api$", Methods: []string{"PUT"}, Headers: []table.HeaderMatch{{Name: "X-A", Regex: "1"}}}, req("PUT", "/api", "X-A", "1"), true},
	} {
		m, err := Compile(tt.match, nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := m.Match(tt.req, Path(tt.req)); got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestCompileNamesTheBadExpression(t *testing.T) {
	for _, m := range []table.HTTPMatch{
		{PathRegex: "/a)|(.*"},
		{Headers: []table.HeaderMatch{{Name: "X", Regex: "("}}},
	} {
		if _, err := Compile(m, nil); err == nil {
			t.Errorf("Compile(%+v) succeeded", m)
		}
	}
}

func TestEmptyMatchesEverything(t *testing.T) {
	m, err := Compile(table.HTTPMatch{Methods: []string{"*"}}, nil)
	if err != nil || !m.Empty() || !m.Match(req("PATCH", "/anything"), "/anything") {
		t.Errorf("a match of any method: Empty %v, err %v", m.Empty(), err)
	}
}

func TestPathOfARequestWithoutOne(t *testing.T) {
	r := req("GET", "/")
	r.URL.Path = ""
	if Path(r) != "/" {
		t.Errorf("Path = %q, want /", Path(r))
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	m, err := Compile(table.HTTPMatch{PathRegex: "^/api/v[0-9]+/", Methods: []string{"GET"}, Headers: []table.HeaderMatch{{Name: "X-A", Regex: "^b"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := req("GET", "/api/v1/items", "X-A", "bc")
	if n := testing.AllocsPerRun(100, func() { m.Match(r, Path(r)) }); n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
}

func TestPathTestAgreesWithTheRegexp(t *testing.T) {
	exprs := []struct {
		pathRegex string
		literal   bool // tested without the regexp
	}{
		{"^/api", true}, {"/api", true}, {"^/healthz$", true}, {`^/a\.json$`, true},
		{"^/a|/b", false}, {"(?i)^/api", false}, {"^/api/.*", false}, {"^/api$|^/x", false},
		{"^/ap[iI]", false}, {"^$", false}, {"^/api(/|$)", false},
	}
	paths := []string{"/", "/api", "/api/", "/API", "/apix", "/x/api", "/healthz", "/healthz/", "/a.json", "/aXjson", "/b", "/x/b", ""}
	for _, e := range exprs {
		expr, tree, err := anchor(e.pathRegex)
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(expr)
		pt := newPathTest(tree, re)
		if (pt.re == nil) != e.literal {
			t.Errorf("%q: tested as literal %v, want %v", e.pathRegex, pt.re == nil, e.literal)
		}
		for _, p := range paths {
			if got, want := pt.match(p), re.MatchString(p); got != want {
				t.Errorf("%q on %q: %v, regexp says %v", e.pathRegex, p, got, want)
			}
		}
	}
}

// req is a request to web.shop.mesh with header name/value pairs.
func req(method, path string, headers ...string) *http.Request {
	r := httptest.NewRequest(method, "http://web.shop.mesh"+path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

// BenchmarkMatch is an A/B rule or ACL match: a method, a literal path
// prefix and a header regex, all satisfied.
func BenchmarkMatch(b *testing.B) {
	m, err := Compile(table.HTTPMatch{PathRegex: "^/api", Methods: []string{"GET", "POST"}, Headers: []table.HeaderMatch{{Name: "X-Canary", Regex: "^on$"}}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	r := req("POST", "/api/v1/items", "X-Canary", "on")
	b.ReportAllocs()
	for b.Loop() {
		m.Match(r, Path(r))
	}
}
