package acl

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// Run with: go test ./pkg/acl -run XXX -bench . -benchmem
// docs/acl.md quotes the figures.

func benchCheck(b *testing.B, src *table.Identity, r *http.Request, want Reason) {
	rule := compileOne(&testing.T{}, webRoute())
	if got := rule.Check(src, r); got != want {
		b.Fatalf("Check = %v, want %v", got, want)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rule.Check(src, r)
	}
}

// BenchmarkHTTPAllowPathMethod is the common allow: a method and a path
// regex (the first match of the source's grant).
func BenchmarkHTTPAllowPathMethod(b *testing.B) {
	benchCheck(b, &client, request("GET", "/api/v1/items/42"), Allowed)
}

// BenchmarkHTTPAllowHeader allows on the second match, after the first
// failed on its method: a header regex.
func BenchmarkHTTPAllowHeader(b *testing.B) {
	benchCheck(b, &client, request("POST", "/api/v1/items", "X-Csrf", "0123456789abcdef"), Allowed)
}

// BenchmarkHTTPAllowAny is a TrafficTarget rule without matches.
func BenchmarkHTTPAllowAny(b *testing.B) {
	r := webRoute()
	r.Allow = []table.HTTPAllow{{Sources: []table.Identity{client}, Matches: []table.HTTPMatch{{}}}}
	rule := compileOne(&testing.T{}, r)
	req := request("GET", "/api/v1/items/42")
	b.ReportAllocs()
	for b.Loop() {
		rule.Check(&client, req)
	}
}

// BenchmarkHTTPDenyNoMatchingRule tries every match of the grant and fails.
func BenchmarkHTTPDenyNoMatchingRule(b *testing.B) {
	benchCheck(b, &client, request("DELETE", "/admin/users"), NoMatchingRule)
}

// BenchmarkHTTPDenyOddPath normalises a path with dot segments.
func BenchmarkHTTPDenyOddPath(b *testing.B) {
	benchCheck(b, &client, request("GET", "/api/../admin"), NoMatchingRule)
}

// BenchmarkStreamAllow is a TCP or UDP check.
func BenchmarkStreamAllow(b *testing.B) {
	rule := compileStream(&table.StreamRoute{Allow: []table.StreamAllow{{Sources: []table.Identity{prom, client}}}})
	b.ReportAllocs()
	for b.Loop() {
		rule.Check(&client)
	}
}

// BenchmarkCompile1000Routes compiles a table of 1,000 HTTP routes, each
// with the Allow rules of webRoute, from scratch and with the previous
// table's policy.
func BenchmarkCompile1000Routes(b *testing.B) {
	t := &table.Table{Schema: table.SchemaVersion, ACL: true}
	for i := range 1000 {
		r := webRoute()
		r.Service.Name = fmt.Sprintf("web-%d", i)
		r.Allow[0].Matches[0].PathRegex = fmt.Sprintf("^/api/%d", i) // distinct regexes
		t.HTTP = append(t.HTTP, r)
	}
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Compile(t, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reload", func(b *testing.B) {
		prev, err := Compile(t, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if prev, err = Compile(t, prev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
