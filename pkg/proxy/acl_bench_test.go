package proxy

import (
	"fmt"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// BenchmarkAdmitHTTP is the whole per-request ACL cost on the HTTP router:
// parsing RemoteAddr, the identity lookup among 10,000 pods, and the check
// against the route's compiled rules; tcp-allow is the same for a TCP
// connection. Run with:
//
//	go test ./pkg/proxy -run XXX -bench Admit -benchmem
func BenchmarkAdmitHTTP(b *testing.B) {
	p, err := New(testConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	pods := make([]table.Pod, 0, 10000)
	for i := range 10000 {
		pods = append(pods, podAt(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), fmt.Sprintf("p-%d", i), fmt.Sprintf("sa-%d", i%100)))
	}
	pods = append(pods, podAt(ipClient, "client-0", "client"))
	tb := &table.Table{Schema: table.SchemaVersion, Version: 1, ACL: true, Pods: pods, HTTP: []table.HTTPRoute{
		httpRouteACL("web", []table.HTTPAllow{{Sources: []table.Identity{saClient}, Matches: []table.HTTPMatch{
			{PathRegex: "^/api", Methods: []string{"GET"}},
			{Methods: []string{"POST"}, Headers: []table.HeaderMatch{{Name: "x-csrf", Regex: ".+"}}},
		}}}, backendAt("web", "127.0.0.1:1")),
	}, TCP: []table.StreamRoute{{Service: svcRef("db"), Port: 5432, ProxyPort: 10000,
		Allow: []table.StreamAllow{{Sources: []table.Identity{saClient}}}}}}
	st, err := p.acl.prepare(tb)
	if err != nil {
		b.Fatal(err)
	}
	p.acl.install(st)
	route := &tb.HTTP[0]
	for _, c := range []struct {
		name, src, method, path string
		allowed                 bool
	}{
		{"allow", ipClient, "GET", "/api/v1/items/42", true},
		{"deny-no-matching-rule", ipClient, "DELETE", "/admin", false},
		{"deny-no-identity", ipNoPod, "GET", "/api/v1/items/42", false},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := httptest.NewRequest(c.method, "http://web.shop.mesh"+c.path, nil)
			r.RemoteAddr = netip.AddrPortFrom(netip.MustParseAddr(c.src), 43210).String()
			if got := p.acl.admitHTTP(tb, route, r) == nil; got != c.allowed {
				b.Fatalf("allowed = %v, want %v", got, c.allowed)
			}
			b.ReportAllocs()
			for b.Loop() {
				_ = p.acl.admitHTTP(tb, route, r)
			}
		})
	}
	b.Run("tcp-allow", func(b *testing.B) {
		src := netip.MustParseAddr(ipClient)
		if !p.acl.admitTCP(tb, &tb.TCP[0], src) {
			b.Fatal("refused")
		}
		b.ReportAllocs()
		for b.Loop() {
			_ = p.acl.admitTCP(tb, &tb.TCP[0], src)
		}
	})
}
