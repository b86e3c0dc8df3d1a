package shadow_test

import (
	"encoding/json"
	"flag"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/shadow"
	"github.com/nodemesh/nodemesh/pkg/snapshot"
	"github.com/nodemesh/nodemesh/pkg/snapshot/snapshottest"
	"github.com/nodemesh/nodemesh/pkg/topology"
	corev1 "k8s.io/api/core/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current build")

// Fixtures shared with the topology and routing golden tests.
const fixtureDir = "../topology/testdata"

func load(t *testing.T, path string) (*snapshot.Snapshot, topology.Options) {
	t.Helper()
	s, raw, err := snapshottest.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var opts topology.Options
	if raw != nil {
		if err := json.Unmarshal(raw, &opts); err != nil {
			t.Fatal(err)
		}
	}
	return s, opts
}

func fixtures(t *testing.T) []string {
	files, _ := filepath.Glob(filepath.Join(fixtureDir, "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	return files
}

// TestGolden pins the desired shadow Services of every fixture.
func TestGolden(t *testing.T) {
	for _, path := range fixtures(t) {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			s, opts := load(t, path)
			got, err := json.MarshalIndent(shadow.Desired(topology.Build(s, opts).ShadowSpecs()), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			snapshottest.Golden(t, filepath.Join("testdata", name+".json"), append(got, '\n'), *update)
		})
	}
}

// TestRestartWritesNothing plays a controller restart: the shadows written
// after the first build come back (as the apiserver stores them) in the next
// snapshot; the rebuild must want exactly them, so nothing is written.
func TestRestartWritesNothing(t *testing.T) {
	for _, path := range fixtures(t) {
		s, opts := load(t, path)
		first := shadow.Desired(topology.Build(s, opts).ShadowSpecs())
		restarted := *s
		restarted.ShadowServices = nil
		for i, d := range first {
			stored := d.DeepCopy()
			stored.ResourceVersion = "1"
			stored.Spec.ClusterIP = "10.96.250." + string(rune('0'+i%10))
			stored.Spec.SessionAffinity = corev1.ServiceAffinityNone
			restarted.ShadowServices = append(restarted.ShadowServices, stored)
		}
		second := shadow.Desired(topology.Build(&restarted, opts).ShadowSpecs())
		if len(second) != len(first) {
			t.Fatalf("%s: %d shadows after restart, %d before", path, len(second), len(first))
		}
		for i := range second {
			if shadow.NeedsUpdate(second[i], restarted.ShadowServices[i]) {
				t.Errorf("%s: restart rewrites %s", path, second[i].Name)
			}
		}
		if orphans := shadow.Orphans(second, restarted.ShadowServices); len(orphans) > 0 {
			t.Errorf("%s: restart deletes %v", path, orphans)
		}
	}
}
