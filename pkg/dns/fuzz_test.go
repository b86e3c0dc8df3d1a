package dns

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzPatchRestore checks, for any text, that a successful patch is undone
// by restore byte for byte, that patching is idempotent, and that the patch
// adds exactly one server block per domain to a Corefile that still parses.
// The seed corpus is every Corefile in testdata/ plus awkward shapes;
// `go test -fuzz=FuzzPatchRestore ./pkg/dns` explores further.
func FuzzPatchRestore(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.Corefile"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b), uint8(0))
		f.Add(string(b), uint8(3))
	}
	for _, s := range []string{
		"",
		"\n\n",
		".:53 {\n    kubernetes cluster.local\n}",
		"\uFEFF.:53 {\r\n    kubernetes cluster.local\r\n}\r\n",
		".:53 {\n    kubernetes cluster.local\n}\n# trailing comment",
		".:53 {\n    kubernetes cluster.local {\n        endpoint \"https://a b\"\n    }\n}\n",
		"(snip) {\n    errors\n}\n.:53 {\n    import snip\n    kubernetes cluster.local\n}\nimport custom/*.server\n",
		".:53 {\n    kubernetes cluster.local\n}\n" + BeginMarker + "\n" + EndMarker + "\n",
		"a.:53, b.:53 {\n    kubernetes cluster.local\n}\n",
		".:53 {\n    template ANY ANY \"x\n{\" {\n    }\n    kubernetes cluster.local\n}\n",
	} {
		f.Add(s, uint8(1))
	}
	f.Fuzz(func(t *testing.T, corefile string, which uint8) {
		opts := Options{}
		if which&1 != 0 {
			opts.Aliases = []string{"traefik.mesh"}
		}
		if which&2 != 0 {
			opts.ExactRules = hashedRules
		}
		patched, err := Patch(corefile, opts)
		if err != nil {
			return // refusing is always allowed; TestPatchRefuses checks when
		}
		base, err := Restore(corefile)
		if err != nil {
			t.Fatalf("Patch accepted a Corefile that Restore refuses: %v", err)
		}
		restored, err := Restore(patched)
		if err != nil {
			t.Fatalf("Restore refused the patched Corefile: %v\n%s", err, patched)
		}
		if restored != base {
			t.Fatalf("restore(patch(x)) != restore(x):\n got %q\nwant %q", restored, base)
		}
		if again, err := Patch(patched, opts); err != nil || again != patched {
			t.Fatalf("patching twice: err %v, changed %v", err, again != patched)
		}
		before, err := parseCorefile(base)
		if err != nil {
			t.Fatalf("restored text does not parse: %v", err)
		}
		after, err := parseCorefile(patched)
		if err != nil {
			t.Fatalf("patched text does not parse: %v", err)
		}
		want := len(before.blocks) + 1 + len(opts.Aliases)
		if len(after.blocks) != want {
			t.Fatalf("patched Corefile has %d server blocks, want %d:\n%s", len(after.blocks), want, patched)
		}
		if !strings.Contains(patched, BeginMarker) {
			t.Fatalf("no marker in the patched text")
		}
	})
}
