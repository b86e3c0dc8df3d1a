// Package tabletest gives tests the routing builder's golden tables
// (pkg/routing/testdata): real tables with every route kind, ACL rules,
// nodes and pods. It hands out their bytes, not decoded tables, so that
// package table's own tests can use it without an import cycle.
package tabletest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Golden is one golden table file.
type Golden struct {
	Name string // the file's base name
	JSON []byte
}

// Goldens returns every golden table, sorted by file name.
func Goldens(t testing.TB) []Golden {
	t.Helper()
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("tabletest: cannot locate its own source")
	}
	files, err := filepath.Glob(filepath.Join(filepath.Dir(self), "..", "..", "routing", "testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("tabletest: no golden tables (%v)", err)
	}
	out := make([]Golden, 0, len(files))
	for _, f := range files { // Glob sorts
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Golden{Name: filepath.Base(f), JSON: b})
	}
	return out
}
