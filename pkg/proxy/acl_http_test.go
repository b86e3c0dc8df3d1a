package proxy

import (
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// httpACLTable is the HTTP scenario of issue 5:
//   - web: shop/client may GET /api..., and POST with an X-Csrf header;
//   - audit: a TrafficTarget names shop/client but has no rules;
//   - open: shop/intruder may do anything;
//   - shop: a TrafficSplit root over shop-v1 and shop-v2 that shop/client
//     may call.
func httpACLTable(t *testing.T, version uint64, pods ...table.Pod) *table.Table {
	web, audit, open := webBackend(t, "web"), webBackend(t, "audit"), webBackend(t, "open")
	v1, v2 := webBackend(t, "shop-v1"), webBackend(t, "shop-v2")
	return &table.Table{Schema: table.SchemaVersion, Version: version, ACL: true, Pods: pods,
		HTTP: []table.HTTPRoute{
			httpRouteACL("audit", []table.HTTPAllow{{Sources: []table.Identity{saClient}}}, backendAt("audit", audit)),
			httpRouteACL("open", []table.HTTPAllow{{Sources: []table.Identity{saIntruder}, Matches: []table.HTTPMatch{{}}}}, backendAt("open", open)),
			httpRouteACL("shop", []table.HTTPAllow{{Sources: []table.Identity{saClient}, Matches: []table.HTTPMatch{{}}}},
				backendAt("shop-v1", v1), backendAt("shop-v2", v2)),
			httpRouteACL("web", []table.HTTPAllow{{Sources: []table.Identity{saClient}, Matches: []table.HTTPMatch{
				{PathRegex: "^/api", Methods: []string{"GET"}},
				{Methods: []string{"POST"}, Headers: []table.HeaderMatch{{Name: "x-csrf", Regex: ".+"}}},
			}}}, backendAt("web", web)),
		}}
}

func TestHTTPAccessControl(t *testing.T) {
	p := newTestProxy(t, testConfig())
	tb := httpACLTable(t, 1, podAt(ipClient, "client-0", "client"), podAt(ipIntruder, "intruder-0", "intruder"))
	if err := p.Apply(tb); err != nil {
		t.Fatal(err)
	}
	proxy := serveHTTP(t, p)
	tests := []struct {
		name    string
		src     string
		method  string
		host    string
		path    string
		headers []string
		code    int
		body    string // the body, or for a 200 the backend's name
	}{
		{"allowed SA, path and method", ipClient, "GET", "web.shop.mesh", "/api/items", nil, 200, "web"},
		{"allowed SA, other path", ipClient, "GET", "web.shop.mesh", "/admin", nil, 403,
			"no TrafficTarget allows shop/client to reach shop/web route GET /admin\n"},
		{"allowed SA, other method", ipClient, "DELETE", "web.shop.mesh", "/api/items", nil, 403,
			"no TrafficTarget allows shop/client to reach shop/web route DELETE /api/items\n"},
		{"header rule holds", ipClient, "POST", "web.shop.mesh", "/orders", []string{"X-Csrf", "t0k3n"}, 200, "web"},
		{"header rule without the header", ipClient, "POST", "web.shop.mesh", "/orders", nil, 403,
			"no TrafficTarget allows shop/client to reach shop/web route POST /orders\n"},
		{"dot segments leave the allowed prefix", ipClient, "GET", "web.shop.mesh", "/api/../admin", nil, 403,
			"no TrafficTarget allows shop/client to reach shop/web route GET /api/../admin\n"},
		{"forbidden SA", ipIntruder, "GET", "web.shop.mesh", "/api/items", nil, 403,
			"no TrafficTarget allows shop/intruder to reach shop/web\n"},
		{"no pod at the source", ipNoPod, "GET", "web.shop.mesh", "/api/items", nil, 403,
			"no TrafficTarget allows 127.0.0.4 (not a pod of the mesh) to reach shop/web\n"},
		{"TrafficTarget with no rules allows nothing", ipClient, "GET", "audit.shop.mesh", "/", nil, 403,
			"no TrafficTarget allows shop/client to reach shop/audit route GET /\n"},
		{"other SA's own rights", ipIntruder, "PUT", "open.shop.mesh", "/anything", nil, 200, "open"},
		{"split root: allowed", ipClient, "GET", "shop.shop.mesh", "/", nil, 200, "shop-v"},
		{"split root: forbidden", ipIntruder, "GET", "shop.shop.mesh", "/", nil, 403,
			"no TrafficTarget allows shop/intruder to reach shop/shop\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, httpFrom(t, tt.src), proxy, tt.method, tt.host, tt.path, tt.headers...)
			if code != tt.code || (code == 200 && !strings.HasPrefix(body, tt.body)) || (code != 200 && body != tt.body) {
				t.Errorf("got %d %q, want %d %q", code, body, tt.code, tt.body)
			}
		})
	}
	for _, c := range []struct {
		svc, reason string
		want        float64
	}{
		{"web", "no-matching-rule", 4}, {"web", "not-allowed", 1}, {"web", "no-identity", 1},
		{"audit", "no-matching-rule", 1}, {"shop", "not-allowed", 1}, {"open", "not-allowed", 0},
	} {
		if got := deniedCount(p, "http", c.svc, c.reason); got != c.want {
			t.Errorf("denied http %s %s = %v, want %v", c.svc, c.reason, got, c.want)
		}
	}
}

// TestSplitReachesEveryBackendOfTheRoot: the ACL is checked once, on the
// root route, and the allowed client is split across its backends inside
// the proxy, with no second hop that would need a forwarded header.
func TestSplitReachesEveryBackendOfTheRoot(t *testing.T) {
	p := newTestProxy(t, testConfig())
	if err := p.Apply(httpACLTable(t, 1, podAt(ipClient, "client-0", "client"))); err != nil {
		t.Fatal(err)
	}
	proxy := serveHTTP(t, p)
	c := httpFrom(t, ipClient)
	seen := map[string]int{}
	for range 40 {
		code, body := do(t, c, proxy, "GET", "shop.shop.mesh", "/")
		if code != 200 {
			t.Fatalf("got %d %q", code, body)
		}
		seen[body]++
	}
	if seen["shop-v1"] == 0 || seen["shop-v2"] == 0 || len(seen) != 2 {
		t.Errorf("backends seen %v, want both shop-v1 and shop-v2", seen)
	}
}

// TestForgedHeadersChangeNothing: identity is the connection's source
// address. A forbidden client that claims an allowed client's address in
// X-Forwarded-For, X-Real-Ip or Forwarded, or that names another host, gets
// what its own identity allows, and an allowed client keeps its rights
// whatever it claims.
func TestForgedHeadersChangeNothing(t *testing.T) {
	p := newTestProxy(t, testConfig())
	if err := p.Apply(httpACLTable(t, 1, podAt(ipClient, "client-0", "client"), podAt(ipIntruder, "intruder-0", "intruder"))); err != nil {
		t.Fatal(err)
	}
	proxy := serveHTTP(t, p)
	forged := []string{"X-Forwarded-For", ipClient, "X-Real-Ip", ipClient, "Forwarded", "for=" + ipClient, "X-Forwarded-Host", "web.shop.mesh"}
	intruder, client := httpFrom(t, ipIntruder), httpFrom(t, ipClient)
	for _, host := range []string{"web.shop.mesh", "web.shop.mesh:80", "WEB.Shop.Mesh.", ipClient} {
		code, body := do(t, intruder, proxy, "GET", host, "/api/items", forged...)
		if code == 200 {
			t.Errorf("intruder with forged headers and Host %q reached %q", host, body)
		}
	}
	// Its Host picks a route it may use: it gets that route's backend and
	// nothing else.
	if code, body := do(t, intruder, proxy, "GET", "open.shop.mesh", "/api/items", forged...); code != 200 || body != "open" {
		t.Errorf("intruder on its own route: %d %q", code, body)
	}
	noPod := httpFrom(t, ipNoPod)
	if code, _ := do(t, noPod, proxy, "GET", "web.shop.mesh", "/api/items", forged...); code != 403 {
		t.Errorf("source without a pod, forged headers: %d, want 403", code)
	}
	claimIntruder := []string{"X-Forwarded-For", ipIntruder, "X-Real-Ip", ipIntruder}
	if code, body := do(t, client, proxy, "GET", "web.shop.mesh", "/api/items", claimIntruder...); code != 200 || body != "web" {
		t.Errorf("allowed client claiming another address: %d %q", code, body)
	}
	if got := deniedCount(p, "http", "web", "not-allowed"); got != 3 {
		t.Errorf("denied as shop/intruder: %v, want 3 (the fourth Host names no route)", got)
	}
}

func TestACLOffIgnoresAllow(t *testing.T) {
	p := newTestProxy(t, testConfig())
	tb := httpACLTable(t, 1)
	tb.ACL = false
	if err := p.Apply(tb); err != nil {
		t.Fatal(err)
	}
	if code, body := do(t, httpFrom(t, ipNoPod), serveHTTP(t, p), "DELETE", "audit.shop.mesh", "/"); code != 200 || body != "audit" {
		t.Errorf("ACL off: %d %q, want 200 from audit", code, body)
	}
}

// TestHTTPPodIPReuse replays the churn of issue 5 on one keep-alive
// connection per address: a pod deleted loses access with the next table,
// and its IP, reused by a pod of another service account, carries that
// pod's rights only.
func TestHTTPPodIPReuse(t *testing.T) {
	p := newTestProxy(t, testConfig())
	proxy := serveHTTP(t, p)
	c := httpFrom(t, ipClient)
	steps := []struct {
		name          string
		pods          []table.Pod
		web, open     int
		webBodyPrefix string
	}{
		{"client pod running", []table.Pod{podAt(ipClient, "client-0", "client")}, 200, 403, "web"},
		{"client pod deleted", nil, 403, 403, "no TrafficTarget allows 127.0.0.2 (not a pod of the mesh)"},
		{"IP reused by an intruder pod", []table.Pod{podAt(ipClient, "intruder-1", "intruder")}, 403, 200, "no TrafficTarget allows shop/intruder to reach shop/web"},
		{"IP reused by a client pod again", []table.Pod{podAt(ipClient, "client-1", "client")}, 200, 403, "web"},
	}
	for i, s := range steps {
		if err := p.Apply(httpACLTable(t, uint64(i+1), s.pods...)); err != nil {
			t.Fatal(err)
		}
		code, body := do(t, c, proxy, "GET", "web.shop.mesh", "/api/items")
		if code != s.web || !strings.HasPrefix(body, s.webBodyPrefix) {
			t.Errorf("%s: web got %d %q, want %d %q", s.name, code, body, s.web, s.webBodyPrefix)
		}
		if code, body := do(t, c, proxy, "GET", "open.shop.mesh", "/"); code != s.open {
			t.Errorf("%s: open got %d %q, want %d", s.name, code, body, s.open)
		}
	}
}
