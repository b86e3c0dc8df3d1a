package table

import (
	"fmt"
	"testing"
)

// BenchmarkValidate5000Pods validates a table of 5,000 pods, the pod list
// of the controller benchmark's 1,000 services; a proxy validates every
// table it receives.
func BenchmarkValidate5000Pods(b *testing.B) {
	t := &Table{Schema: SchemaVersion}
	for i := range 5000 {
		t.Pods = append(t.Pods, Pod{IP: fmt.Sprintf("10.245.%d.%d", i/250, i%250+1), Namespace: "bench", Name: fmt.Sprintf("svc-%05d-%d", i/5, i%5), ServiceAccount: "default", Node: "node-00", Workload: "Pod/x"})
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := Validate(t); err != nil {
			b.Fatal(err)
		}
	}
}
