package httpproxy

import (
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// BenchmarkInMemoryChainPolicy measures what each traffic policy adds to
// the in-memory chain (compare with BenchmarkInMemoryChain, the plain
// route, which builds the same chain as before the policies existed).
//
//	go test -run XXX -bench ChainPolicy -benchmem ./pkg/proxy/httpproxy/
func BenchmarkInMemoryChainPolicy(b *testing.B) {
	outlier := &table.Outlier{ConsecutiveErrors: 5, BaseEjectionTime: table.Duration(30 * time.Second), MaxEjectionTime: table.Duration(5 * time.Minute), MaxEjectionPercent: 10}
	locality := &table.Locality{Prefer: table.LocalityNode, MaxInFlight: 100}
	budget := &table.RetryBudget{Percent: 20, MinPerSecond: 3, Window: table.Duration(10 * time.Second)}
	cases := []struct {
		name string
		mw   table.Middleware
	}{
		{"RequestTimeout", table.Middleware{RequestTimeout: table.Duration(time.Minute)}},
		{"MaxRequests", table.Middleware{MaxRequests: 1000}},
		{"Outlier", table.Middleware{Outlier: outlier}},
		{"Locality", table.Middleware{Locality: locality}},
		{"RetriesWithBudget", table.Middleware{RetryAttempts: 2, RetryBudget: budget}},
		{"RetriesWithoutBudget", table.Middleware{RetryAttempts: 2}},
		{"FaultsAt0Percent", table.Middleware{Faults: &table.Faults{AbortPercent: 0.0001, AbortStatus: 503}}},
		{"All", table.Middleware{RequestTimeout: table.Duration(time.Minute), MaxRequests: 1000, Outlier: outlier, Locality: locality, RetryAttempts: 2, RetryBudget: budget}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r := New(Options{Node: "node-a"})
			for _, f := range r.fwd.byScheme {
				f.Transport = cannedTransport{}
			}
			route := httpRoute("web", 80, table.Backend{Service: svc("web"), Weight: 1, Endpoints: []table.Endpoint{
				{Address: "10.244.1.1:8080", Node: "node-a"}, {Address: "10.244.2.1:8080", Node: "node-b"},
			}})
			route.Middleware = c.mw
			if err := r.Apply(tableOf(route)); err != nil {
				b.Fatal(err)
			}
			runHandler(b, r)
		})
	}
}
