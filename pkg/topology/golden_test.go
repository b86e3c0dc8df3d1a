package topology_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/snapshot"
	"github.com/nodemesh/nodemesh/pkg/snapshot/snapshottest"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current build")

// fixtures lists the input fixtures shared by the topology and routing golden
// tests.
func fixtures(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in testdata: %v", err)
	}
	return files
}

func load(t *testing.T, path string) (*snapshot.Snapshot, topology.Options) {
	t.Helper()
	s, raw, err := snapshottest.Load(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var opts topology.Options
	if raw != nil {
		dec := json.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(&opts); err != nil {
			t.Fatalf("%s: options: %v", path, err)
		}
	}
	return s, opts
}

func encode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestGolden builds every fixture and compares the Topology with
// testdata/<fixture>.json.
func TestGolden(t *testing.T) {
	for _, path := range fixtures(t) {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			s, opts := load(t, path)
			got := encode(t, topology.Build(s, opts))
			snapshottest.Golden(t, filepath.Join("testdata", name+".json"), got, *update)
		})
	}
}

// TestDeterministic shuffles every slice of each fixture's snapshot and
// expects a byte-identical Topology.
func TestDeterministic(t *testing.T) {
	for _, path := range fixtures(t) {
		s, opts := load(t, path)
		want := encode(t, topology.Build(s, opts))
		for seed := uint64(1); seed <= 5; seed++ {
			r := rand.New(rand.NewPCG(seed, seed))
			got := encode(t, topology.Build(snapshottest.Shuffle(s, r), opts))
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: shuffle seed %d changed the topology", path, seed)
			}
		}
	}
}

// TestBuildDoesNotModifySnapshot guards the shared informer objects.
func TestBuildDoesNotModifySnapshot(t *testing.T) {
	for _, path := range fixtures(t) {
		s, opts := load(t, path)
		before := snapshottest.DeepCopy(s)
		topology.Build(s, opts)
		if !reflect.DeepEqual(before, s) {
			t.Fatalf("%s: Build modified its snapshot", path)
		}
	}
}

// TestRoundTrip checks that a Topology decoded from its JSON (as served at
// /api/topology/current) answers lookups like the built one.
func TestRoundTrip(t *testing.T) {
	s, opts := load(t, "testdata/splits.yaml")
	built := topology.Build(s, opts)
	var decoded topology.Topology
	if err := json.Unmarshal(encode(t, built), &decoded); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encode(t, &decoded), encode(t, built)) {
		t.Fatal("JSON round trip changed the topology")
	}
	for _, svc := range built.Services {
		if got := decoded.Service(svc.Namespace, svc.Name); got == nil || got.ShadowName != svc.ShadowName {
			t.Fatalf("decoded lookup of %s/%s = %v", svc.Namespace, svc.Name, got)
		}
	}
}

func TestNilSnapshot(t *testing.T) {
	topo := topology.Build(nil, topology.Options{})
	if len(topo.Services) != 0 || len(topo.Errors) != 0 || topo.Options.Domain != "mesh" {
		t.Fatalf("Build(nil) = %+v", topo)
	}
}
