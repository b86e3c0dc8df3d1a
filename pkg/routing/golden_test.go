package routing_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/routing"
	"github.com/nodemesh/nodemesh/pkg/snapshot"
	"github.com/nodemesh/nodemesh/pkg/snapshot/snapshottest"
	"github.com/nodemesh/nodemesh/pkg/table"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current build")

// The input fixtures are shared with pkg/topology, whose golden files pin
// the intermediate model; here the same inputs pin the routing table.
const fixtureDir = "../topology/testdata"

func fixtures(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(fixtureDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in %s: %v", fixtureDir, err)
	}
	return files
}

func load(t testing.TB, path string) (*snapshot.Snapshot, topology.Options) {
	t.Helper()
	s, raw, err := snapshottest.Load(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var opts topology.Options
	if raw != nil {
		if err := json.Unmarshal(raw, &opts); err != nil {
			t.Fatalf("%s: options: %v", path, err)
		}
	}
	return s, opts
}

func build(s *snapshot.Snapshot, opts topology.Options) *table.Table {
	return routing.Build(topology.Build(s, opts))
}

func encode(t testing.TB, tb *table.Table) []byte {
	t.Helper()
	b, err := json.MarshalIndent(tb, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestGolden builds the table of every fixture and compares it with
// testdata/<fixture>.json.
func TestGolden(t *testing.T) {
	for _, path := range fixtures(t) {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			s, opts := load(t, path)
			snapshottest.Golden(t, filepath.Join("testdata", name+".json"), encode(t, build(s, opts)), *update)
		})
	}
}

// TestDeterministic: shuffling every slice of the snapshot gives a
// byte-identical table, in the canonical encoding proxies receive.
func TestDeterministic(t *testing.T) {
	for _, path := range fixtures(t) {
		s, opts := load(t, path)
		want, err := table.Encode(build(s, opts))
		if err != nil {
			t.Fatal(err)
		}
		for seed := uint64(1); seed <= 5; seed++ {
			got, err := table.Encode(build(snapshottest.Shuffle(s, rand.New(rand.NewPCG(seed, 7))), opts))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: shuffle seed %d changed the table", path, seed)
			}
		}
	}
}

// TestTableInvariants checks what the proxy relies on, for every fixture:
// sorted slices, at most one DefaultPort route per host, unique proxy ports,
// and no empty backend list.
func TestTableInvariants(t *testing.T) {
	for _, path := range fixtures(t) {
		s, opts := load(t, path)
		tb := build(s, opts)
		if tb.Schema != table.SchemaVersion || tb.Version != 0 {
			t.Errorf("%s: schema %d version %d", path, tb.Schema, tb.Version)
		}
		defaults := map[string]string{}
		for i, r := range tb.HTTP {
			if i > 0 {
				p := tb.HTTP[i-1]
				if p.Service.String() > r.Service.String() || (p.Service == r.Service && p.Port >= r.Port) {
					t.Errorf("%s: HTTP routes out of order at %s:%d", path, r.Service, r.Port)
				}
			}
			if len(r.Backends) == 0 {
				t.Errorf("%s: %s:%d has no backends", path, r.Service, r.Port)
			}
			for _, h := range r.Hosts {
				if r.DefaultPort {
					if other, ok := defaults[h]; ok {
						t.Errorf("%s: host %s has two default routes: %s and %s:%d", path, h, other, r.Service, r.Port)
					}
					defaults[h] = r.Service.String()
				}
			}
		}
		for _, list := range [][]table.StreamRoute{tb.TCP, tb.UDP} {
			for i := 1; i < len(list); i++ {
				if list[i-1].ProxyPort >= list[i].ProxyPort {
					t.Errorf("%s: proxy port %d repeated or out of order", path, list[i].ProxyPort)
				}
			}
		}
		for i := 1; i < len(tb.Pods); i++ {
			if tb.Pods[i-1].IP >= tb.Pods[i].IP {
				t.Errorf("%s: pods out of order at %s", path, tb.Pods[i].IP)
			}
		}
	}
}
