package routing_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/routing"
	"github.com/nodemesh/nodemesh/pkg/table"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

// TestBuilderMatchesBuild: builders with a memory, fed the fixtures in turn
// (each twice, so the pod list is reused), encode to Build's bytes through a
// table.Encoder, which keeps the pods' encoding across them.
func TestBuilderMatchesBuild(t *testing.T) {
	var (
		tb  topology.Builder
		rb  routing.Builder
		enc table.Encoder
	)
	for _, path := range fixtures(t) {
		s, opts := load(t, path)
		want, err := table.Encode(build(s, opts))
		if err != nil {
			t.Fatal(err)
		}
		var prev *table.Table
		for round := range 2 {
			got := rb.Build(tb.Build(s, opts))
			b, err := enc.Encode(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, want) {
				t.Fatalf("%s round %d: builders differ from Build:\n%s\nwant\n%s", path, round, b, want)
			}
			if prev != nil && len(got.Pods) > 0 && &got.Pods[0] != &prev.Pods[0] {
				t.Errorf("%s: unchanged pods were not reused", path)
			}
			prev = got
		}
		if len(s.EndpointSlices) == 0 {
			continue
		}
		// A slice that lost endpoints: its backend is built again.
		edited := *s
		edited.EndpointSlices = slices.Clone(s.EndpointSlices)
		es := s.EndpointSlices[0].DeepCopy()
		es.Endpoints = es.Endpoints[:len(es.Endpoints)/2]
		edited.EndpointSlices[0] = es
		want, _ = table.Encode(build(&edited, opts))
		if b, _ := enc.Encode(rb.Build(tb.Build(&edited, opts))); !bytes.Equal(b, want) {
			t.Fatalf("%s with a slice edited: builders differ from Build:\n%s\nwant\n%s", path, b, want)
		}
	}
}
