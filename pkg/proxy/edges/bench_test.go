package edges

import (
	"fmt"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// BenchmarkLookupRemote is the per-request cost of naming a client among
// 10,000 pods.
func BenchmarkLookupRemote(b *testing.B) {
	tb := &table.Table{}
	for i := range 10000 {
		tb.Pods = append(tb.Pods, table.Pod{IP: fmt.Sprintf("10.244.%d.%d", i/250, 1+i%250), Namespace: "shop", Name: fmt.Sprint(i), Workload: fmt.Sprintf("Deployment/w%d", i%100)})
	}
	s := Build(tb)
	b.ReportAllocs()
	for b.Loop() {
		if s.LookupRemote("10.244.9.9:40000") == Unknown {
			b.Fatal("unknown")
		}
	}
}
