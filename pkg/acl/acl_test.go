package acl

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/table"
)

var (
	client = table.Identity{Namespace: "shop", ServiceAccount: "client"}
	other  = table.Identity{Namespace: "shop", ServiceAccount: "other"}
	prom   = table.Identity{Namespace: "monitoring", ServiceAccount: "prom"}
	// sameNameElsewhere has client's service account name in another
	// namespace: identities are (namespace, name) pairs.
	sameNameElsewhere = table.Identity{Namespace: "evil", ServiceAccount: "client"}
)

// webRoute is shop/web with the Allow rules the builder makes of:
// client may GET /api... and POST with an x-csrf header; prom may GET
// /metrics; other is named by a TrafficTarget that has no HTTP rule.
func webRoute() table.HTTPRoute {
	return table.HTTPRoute{
		Service: table.ServiceRef{Namespace: "shop", Name: "web"}, Port: 80,
		Hosts: []string{"web.shop.mesh"}, Scheme: table.SchemeHTTP,
		Allow: []table.HTTPAllow{
			{Sources: []table.Identity{client, prom}, Matches: []table.HTTPMatch{
				{PathRegex: "^/api", Methods: []string{"GET"}},
				{Methods: []string{"POST"}, Headers: []table.HeaderMatch{{Name: "x-csrf", Regex: ".+"}}},
			}},
			{Sources: []table.Identity{prom}, Matches: []table.HTTPMatch{{PathRegex: "/metrics$", Methods: []string{"*"}}}},
			{Sources: []table.Identity{other}}, // a TrafficTarget with no rules
		},
	}
}

func compileOne(t *testing.T, r table.HTTPRoute) *HTTPRule {
	t.Helper()
	tb := &table.Table{Schema: table.SchemaVersion, ACL: true, HTTP: []table.HTTPRoute{r}}
	p, err := Compile(tb, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p.HTTP(r.Service, r.Port)
}

func request(method, target string, headers ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		if http.CanonicalHeaderKey(headers[i]) == "Host" {
			r.Host = headers[i+1]
			continue
		}
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

func TestHTTPCheck(t *testing.T) {
	rule := compileOne(t, webRoute())
	tests := []struct {
		name string
		src  *table.Identity
		req  *http.Request
		want Reason
	}{
		{"allowed SA, path and method", &client, request("GET", "/api/items"), Allowed},
		{"path regex is anchored at the start", &client, request("GET", "/v2/api"), NoMatchingRule},
		{"wrong method", &client, request("DELETE", "/api/items"), NoMatchingRule},
		{"methods are case-sensitive", &client, request("get", "/api/items"), NoMatchingRule},
		{"header rule holds", &client, request("POST", "/anything", "X-Csrf", "token"), Allowed},
		{"header name is case-insensitive", &client, request("POST", "/anything", "x-csrf", "t"), Allowed},
		{"header rule missing header", &client, request("POST", "/anything"), NoMatchingRule},
		{"header rule empty value", &client, request("POST", "/anything", "X-Csrf", ""), NoMatchingRule},
		{"one of several header values suffices", &client, request("POST", "/x", "X-Csrf", "", "X-Csrf", "t"), Allowed},
		{"second Allow adds to the first", &prom, request("PUT", "/metrics"), Allowed},
		{"source of one Allow gets nothing of another", &client, request("GET", "/metrics"), NoMatchingRule},
		{"forbidden SA", &table.Identity{Namespace: "shop", ServiceAccount: "intruder"}, request("GET", "/api"), NotAllowed},
		{"same SA name in another namespace", &sameNameElsewhere, request("GET", "/api"), NotAllowed},
		{"TrafficTarget with no rules allows nothing", &other, request("GET", "/api"), NoMatchingRule},
		{"no identity", nil, request("GET", "/api"), NoIdentity},
		{"dot segments must be allowed once cleaned", &client, request("GET", "/api/../admin"), NoMatchingRule},
		{"encoded dot segments arrive decoded", &client, request("GET", "/api/%2e%2e/admin"), NoMatchingRule},
		{"encoded slash arrives decoded", &client, request("GET", "/api%2F..%2Fadmin"), NoMatchingRule},
		{"backslash segments", &client, request("GET", `/api\..\admin`), NoMatchingRule},
		{"dot segment that stays inside", &client, request("GET", "/api/./v1/"), Allowed},
		{"doubled slash that stays inside", &client, request("GET", "/api//v1"), Allowed},
		{"dots inside a name are no segment", &client, request("GET", "/api/v1..2/a.b"), Allowed},
		{"forged X-Forwarded-For changes nothing", &other, request("GET", "/api", "X-Forwarded-For", "10.0.0.1"), NoMatchingRule},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rule.Check(tt.src, tt.req); got != tt.want {
				t.Errorf("Check = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHTTPMatchParts(t *testing.T) {
	tests := []struct {
		name  string
		match table.HTTPMatch
		req   *http.Request
		want  Reason
	}{
		{"empty match allows every request", table.HTTPMatch{}, request("PATCH", "/x/../y"), Allowed},
		{"star method", table.HTTPMatch{Methods: []string{"*"}}, request("OPTIONS", "/"), Allowed},
		{"every alternative is anchored", table.HTTPMatch{PathRegex: "^/a|/b"}, request("GET", "/x/b"), NoMatchingRule},
		{"second alternative at the start", table.HTTPMatch{PathRegex: "^/a|/b"}, request("GET", "/b/c"), Allowed},
		{"header regex is unanchored", table.HTTPMatch{Headers: []table.HeaderMatch{{Name: "X-Env", Regex: "canary"}}}, request("GET", "/", "X-Env", "eu-canary-1"), Allowed},
		{"all headers must hold", table.HTTPMatch{Headers: []table.HeaderMatch{{Name: "A", Regex: "1"}, {Name: "B", Regex: "2"}}}, request("GET", "/", "A", "1"), NoMatchingRule},
		{"Host rule reads the Host", table.HTTPMatch{Headers: []table.HeaderMatch{{Name: "host", Regex: `^web\.shop\.mesh(:80)?$`}}}, request("GET", "/", "Host", "web.shop.mesh"), Allowed},
		{"Host rule refuses another Host", table.HTTPMatch{Headers: []table.HeaderMatch{{Name: "host", Regex: `^web\.shop\.mesh(:80)?$`}}}, request("GET", "/", "Host", "other.shop.mesh"), NoMatchingRule},
		{"method, path and header together", table.HTTPMatch{PathRegex: "/api", Methods: []string{"GET", "HEAD"}, Headers: []table.HeaderMatch{{Name: "X-A", Regex: "^y$"}}}, request("HEAD", "/api", "X-A", "y"), Allowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := webRoute()
			r.Allow = []table.HTTPAllow{{Sources: []table.Identity{client}, Matches: []table.HTTPMatch{tt.match}}}
			if got := compileOne(t, r).Check(&client, tt.req); got != tt.want {
				t.Errorf("Check = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRouteWithoutAllowAdmitsNobody(t *testing.T) {
	r := webRoute()
	r.Allow = nil
	if got := compileOne(t, r).Check(&client, request("GET", "/")); got != NotAllowed {
		t.Errorf("Check = %v, want not-allowed", got)
	}
}

func TestStreamCheck(t *testing.T) {
	tb := &table.Table{Schema: table.SchemaVersion, ACL: true,
		TCP: []table.StreamRoute{{Service: table.ServiceRef{Namespace: "shop", Name: "db"}, Port: 5432, ProxyPort: 10000,
			Allow: []table.StreamAllow{{Sources: []table.Identity{client}}, {Sources: []table.Identity{prom}}}}},
		UDP: []table.StreamRoute{{Service: table.ServiceRef{Namespace: "shop", Name: "dns"}, Port: 53, ProxyPort: 11000}},
	}
	p, err := Compile(tb, nil)
	if err != nil {
		t.Fatal(err)
	}
	tcp, udp := p.TCP(10000), p.UDP(11000)
	for _, tt := range []struct {
		name string
		rule *StreamRule
		src  *table.Identity
		want Reason
	}{
		{"tcp allowed", tcp, &client, Allowed},
		{"tcp second Allow", tcp, &prom, Allowed},
		{"tcp forbidden", tcp, &other, NotAllowed},
		{"tcp no identity", tcp, nil, NoIdentity},
		{"udp without Allow", udp, &client, NotAllowed},
	} {
		if got := tt.rule.Check(tt.src); got != tt.want {
			t.Errorf("%s: Check = %v, want %v", tt.name, got, tt.want)
		}
	}
	if p.TCP(11000) != nil || p.UDP(10000) != nil {
		t.Error("a route of one protocol found under the other")
	}
	if p.HTTP(table.ServiceRef{Namespace: "shop", Name: "db"}, 5432) != nil {
		t.Error("a stream route found as an HTTP route")
	}
	var none *Policy
	if none.HTTP(webRoute().Service, 80) != nil || none.TCP(10000) != nil || none.UDP(11000) != nil {
		t.Error("a nil policy has rules")
	}
}

func TestCompileRejectsBadRegexNamingTheRoute(t *testing.T) {
	r := webRoute()
	r.Allow[0].Matches[1].Headers[0].Regex = "("
	tb := &table.Table{Schema: table.SchemaVersion, HTTP: []table.HTTPRoute{r}}
	_, err := Compile(tb, nil)
	if err == nil || !strings.Contains(err.Error(), "shop/web port 80") || !strings.Contains(err.Error(), "x-csrf") {
		t.Fatalf("Compile error = %v, want one naming the route and header", err)
	}
}

func TestCompileReusesThePreviousTablesMatchers(t *testing.T) {
	first := &table.Table{Schema: table.SchemaVersion, HTTP: []table.HTTPRoute{webRoute()}}
	p1, err := Compile(first, nil)
	if err != nil {
		t.Fatal(err)
	}
	second := &table.Table{Schema: table.SchemaVersion, HTTP: []table.HTTPRoute{webRoute(), webRoute()}}
	second.HTTP[1].Service.Name = "web2"
	p2, err := Compile(second, p1)
	if err != nil {
		t.Fatal(err)
	}
	m1 := p1.HTTP(first.HTTP[0].Service, 80).bySource[client].matches
	for i := range second.HTTP {
		m2 := p2.HTTP(second.HTTP[i].Service, 80).bySource[client].matches
		if len(m1) != 2 || len(m2) != 2 || m1[0] != m2[0] || m1[1] != m2[1] {
			t.Fatalf("route %d: matchers not shared with the previous table", i)
		}
	}
	if p2.shared.old != nil {
		t.Error("the new policy keeps the old cache alive")
	}
}

func TestAllowPathDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	rule := compileOne(t, webRoute())
	reqs := []*http.Request{request("GET", "/api/items"), request("POST", "/x", "X-Csrf", "t")}
	for _, r := range reqs {
		if got := rule.Check(&client, r); got != Allowed {
			t.Fatalf("%s %s: %v", r.Method, r.URL.Path, got)
		}
		if n := testing.AllocsPerRun(100, func() { rule.Check(&client, r) }); n != 0 {
			t.Errorf("%s %s: %v allocations per check, want 0", r.Method, r.URL.Path, n)
		}
	}
}

func TestDenialMessages(t *testing.T) {
	r := webRoute()
	src := netip.MustParseAddr("10.244.1.7")
	stream := &table.StreamRoute{Service: table.ServiceRef{Namespace: "shop", Name: "db"}, Port: 5432}
	for _, tt := range []struct{ got, want string }{
		{HTTPDenial(NoMatchingRule, src, &client, &r, request("GET", "/admin")), "no TrafficTarget allows shop/client to reach shop/web route GET /admin"},
		{HTTPDenial(NotAllowed, src, &other, &r, request("GET", "/admin")), "no TrafficTarget allows shop/other to reach shop/web"},
		{HTTPDenial(NoIdentity, src, nil, &r, request("GET", "/")), "no TrafficTarget allows 10.244.1.7 (not a pod of the mesh) to reach shop/web"},
		{HTTPDenial(NoMatchingRule, src, &client, &r, request("GET", "/a%20b%0d%0aX:%201")), `no TrafficTarget allows shop/client to reach shop/web route GET "/a b\r\nX: 1"`},
		{StreamDenial(NotAllowed, "tcp", src, &other, stream), "no TrafficTarget allows shop/other to reach shop/db port 5432/tcp"},
	} {
		if tt.got != tt.want {
			t.Errorf("got  %q\nwant %q", tt.got, tt.want)
		}
	}
	long := HTTPDenial(NoMatchingRule, src, &client, &r, request("GET", "/"+strings.Repeat("a", 3000)))
	if len(long) > 250 || !strings.HasSuffix(long, `aaa"...`) {
		t.Errorf("long path shown as %q, want it cut at %d bytes", long, maxShownPath)
	}
}

func TestReasonNames(t *testing.T) {
	want := map[Reason]string{Allowed: "allowed", NoIdentity: "no-identity", NotAllowed: "not-allowed", NoMatchingRule: "no-matching-rule"}
	for r, s := range want {
		if r.String() != s {
			t.Errorf("%d.String() = %q, want %q", r, r.String(), s)
		}
	}
	if len(DenyReasons()) != len(want)-1 {
		t.Errorf("DenyReasons() = %v", DenyReasons())
	}
}
