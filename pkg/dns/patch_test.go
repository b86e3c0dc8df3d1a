package dns

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the output (go test -update rewrites it); got:\n%s", path, got)
	}
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var hashedRules = []ExactRule{
	{Service: types.NamespacedName{Namespace: "team--a", Name: "api"}, Shadow: "api--team--a"},
	{Service: types.NamespacedName{Namespace: "a-very-long-namespace-name-for-testing", Name: "a-very-long-service-name"}, Shadow: "a-very-long-service-name-a-very-long-names-3f9a1c0b7e"},
}

// TestPatchGolden patches real default Corefiles and pins the result. Each
// result must also restore to its input byte for byte and patch to itself.
func TestPatchGolden(t *testing.T) {
	tests := []struct {
		name string
		in   string // testdata input
		opts Options
	}{
		{name: "coredns-1.7", in: "coredns-1.7.in.Corefile"},
		{name: "coredns-1.11", in: "coredns-1.11.in.Corefile"},
		{name: "two-aliases", in: "coredns-1.11.in.Corefile", opts: Options{Aliases: []string{"traefik.mesh", "maesh"}}},
		{name: "exact-rules", in: "coredns-1.11.in.Corefile", opts: Options{ExactRules: hashedRules}},
		{name: "custom-options", in: "custom-options.in.Corefile", opts: Options{MeshNamespace: "mesh-system", Domain: "svc.mesh", ClusterDomain: "k8s.example"}},
		{name: "bind-and-port", in: "bind-and-port.in.Corefile"},
		{name: "default-port", in: "default-port.in.Corefile", opts: Options{DefaultPort: 1053}},
		{name: "no-final-newline", in: "no-final-newline.in.Corefile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := readTestdata(t, tt.in)
			out, err := Patch(in, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name+".patched.Corefile", out)
			again, err := Patch(out, tt.opts)
			if err != nil {
				t.Fatalf("patching the patched Corefile: %v", err)
			}
			if again != out {
				t.Errorf("patching twice changed the Corefile:\n%s", again)
			}
			restored, err := Restore(out)
			if err != nil {
				t.Fatal(err)
			}
			if restored != in {
				t.Errorf("restore did not give the input back; got:\n%q\nwant:\n%q", restored, in)
			}
		})
	}
}

// TestPatchKeepsUserEdits edits a patched Corefile around the region (and
// moves the region between two blocks), changes the options, and checks
// that patch rewrites only the region and restore removes only the region.
func TestPatchKeepsUserEdits(t *testing.T) {
	base := readTestdata(t, "coredns-1.11.in.Corefile")
	patched, err := Patch(base, Options{})
	if err != nil {
		t.Fatal(err)
	}
	before := "# cluster DNS, edited by hand\n" + base + "\n"
	after := "\nexample.org:53 {\n    errors\n    forward . 10.0.0.2\n}\n"
	region := strings.TrimPrefix(patched, base)
	edited := before + region + after

	repatched, err := Patch(edited, Options{Aliases: []string{"traefik.mesh"}, ExactRules: hashedRules})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(repatched, before) || !strings.HasSuffix(repatched, after) {
		t.Fatalf("patch changed text outside the region:\n%s", repatched)
	}
	golden(t, "user-edits.patched.Corefile", repatched)
	restored, err := Restore(repatched)
	if err != nil {
		t.Fatal(err)
	}
	if restored != before+after {
		t.Errorf("restore removed more or less than the region; got:\n%s", restored)
	}
}

// TestPatchCustomConfigMap builds the value of the coredns-custom key (AKS):
// an empty file gets the region, forwarding to what the main Corefile says.
func TestPatchCustomConfigMap(t *testing.T) {
	l, err := FindListener(readTestdata(t, "aks-main.in.Corefile"), "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Patch("", Options{Listener: &l, Aliases: []string{"traefik.mesh"}})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "aks-custom.patched.Corefile", out)
	if restored, err := Restore(out); err != nil || restored != "" {
		t.Errorf("Restore = %q, %v; want the empty value back", restored, err)
	}
}

// TestPatchRefuses lists Corefiles the patcher must leave alone, each with
// the words its error must hold.
func TestPatchRefuses(t *testing.T) {
	patched, err := Patch(readTestdata(t, "coredns-1.11.in.Corefile"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		corefile    string
		opts        Options
		unparseable bool
		want        string
	}{
		{name: "unbalanced open", corefile: ".:53 {\n    errors\n", unparseable: true, want: "never closed"},
		{name: "unbalanced close", corefile: ".:53 {\n    errors\n}\n}\n", unparseable: true, want: "unexpected \"}\""},
		{name: "nested unbalanced", corefile: ".:53 {\n    kubernetes cluster.local {\n        pods insecure\n}\n", unparseable: true, want: "never closed"},
		{name: "unclosed quote", corefile: ".:53 {\n    errors \"oops\n}\n", unparseable: true, want: "quote"},
		{name: "brace-less block", corefile: ".:53\nkubernetes cluster.local\n", unparseable: true, want: "no opening brace"},
		{name: "brace on directive line", corefile: ".:53 {\n    errors }\n", unparseable: true, want: "closing brace"},
		{name: "begin marker only", corefile: strings.Replace(patched, EndMarker, "# the end", 1), unparseable: true, want: "damaged"},
		{name: "end marker only", corefile: strings.Replace(patched, BeginMarker, "# the beginning", 1), unparseable: true, want: "damaged"},
		{name: "two regions", corefile: patched + strings.TrimPrefix(patched, readTestdata(t, "coredns-1.11.in.Corefile")), unparseable: true, want: "damaged"},
		{name: "markers swapped", corefile: ".:53 {\n    kubernetes cluster.local\n}\n" + EndMarker + "\n" + BeginMarker + "\n", unparseable: true, want: "before"},
		{name: "marker inside a block", corefile: ".:53 {\n" + BeginMarker + "\n    kubernetes cluster.local\n" + EndMarker + "\n}\n", unparseable: true, want: "inside the server block"},
		{name: "zone taken", corefile: ".:53 {\n    kubernetes cluster.local\n}\nmesh:53 {\n    whoami\n}\n", want: "already has a server block for \"mesh\""},
		{name: "traefik mesh block", corefile: ".:53 {\n    kubernetes cluster.local\n}\n#### Begin Traefik Mesh Block\ntraefik.mesh:53 {\n    errors\n}\n#### End Traefik Mesh Block\n", opts: Options{Aliases: []string{"traefik.mesh"}}, want: "Traefik Mesh's block"},
		{name: "no kubernetes plugin", corefile: ".:53 {\n    forward . 8.8.8.8\n}\n", want: "kubernetes plugin"},
		{name: "kubernetes for another domain", corefile: ".:53 {\n    kubernetes example.local\n}\n", want: "\"cluster.local\""},
		{name: "bind without address", corefile: ".:53 {\n    bind eth0\n    kubernetes cluster.local\n}\n", want: "bind names no IP"},
		{name: "bad port", corefile: ".:dns {\n    kubernetes cluster.local\n}\n", want: "not a port"},
		{name: "domain in cluster domain", corefile: ".:53 {\n    kubernetes cluster.local\n}\n", opts: Options{Domain: "mesh.cluster.local"}, want: "overlaps"},
		{name: "bad alias", corefile: ".:53 {\n    kubernetes cluster.local\n}\n", opts: Options{Aliases: []string{"Not_A_Domain"}}, want: "domain \"not_a_domain\""},
		{name: "bad exact rule", corefile: ".:53 {\n    kubernetes cluster.local\n}\n", opts: Options{ExactRules: []ExactRule{{Service: types.NamespacedName{Namespace: "ns", Name: "a b"}, Shadow: "x"}}}, want: "exact rule for ns/a b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Patch(tt.corefile, tt.opts)
			if err == nil {
				t.Fatalf("Patch succeeded; want an error with %q. Output:\n%s", tt.want, out)
			}
			if out != "" {
				t.Errorf("Patch returned text with its error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if got := errors.Is(err, ErrUnparseable); got != tt.unparseable {
				t.Errorf("errors.Is(err, ErrUnparseable) = %v, want %v (%v)", got, tt.unparseable, err)
			}
			if tt.unparseable {
				if _, rerr := Restore(tt.corefile); !errors.Is(rerr, ErrUnparseable) {
					t.Errorf("Restore error = %v, want ErrUnparseable", rerr)
				}
			}
		})
	}
}

// TestRestoreUnpatched returns a Corefile without our region unchanged,
// including one that Traefik Mesh patched (its markers are not ours).
func TestRestoreUnpatched(t *testing.T) {
	for _, in := range []string{
		"",
		readTestdata(t, "coredns-1.7.in.Corefile"),
		"#### Begin Traefik Mesh Block\ntraefik.mesh:53 {\n    errors\n}\n#### End Traefik Mesh Block\n",
		"example.org {\n    whoami # nodemesh:begin is not a marker here\n}\n",
	} {
		got, err := Restore(in)
		if err != nil || got != in {
			t.Errorf("Restore(%q) = %q, %v; want it unchanged", in, got, err)
		}
	}
}

func TestNeedsExactRule(t *testing.T) {
	tests := []struct {
		ns, name, shadow string
		want             bool
	}{
		{"test", "web", "web--test", false},
		{"test", "a--b", "a--b--test", false}, // split at the last "--": right
		{"team--a", "api", "api--team--a", true},
		{"test", "web", "web-0123456789", true},
	}
	for _, tt := range tests {
		if got := NeedsExactRule(types.NamespacedName{Namespace: tt.ns, Name: tt.name}, tt.shadow); got != tt.want {
			t.Errorf("NeedsExactRule(%s/%s, %s) = %v, want %v", tt.ns, tt.name, tt.shadow, got, tt.want)
		}
	}
}
