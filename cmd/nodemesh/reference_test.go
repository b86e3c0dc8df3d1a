package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/traefik/paerser/cli"

	"github.com/nodemesh/nodemesh/pkg/cmdline"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md from the code")

const referencePath = "../../docs/configuration.md"

// TestConfigurationReferenceIsCurrent keeps docs/configuration.md equal to
// the options the binary really has. Run with -update after changing one.
func TestConfigurationReferenceIsCurrent(t *testing.T) {
	want := renderReference()
	if *update {
		if err := os.WriteFile(referencePath, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date with the code; run: go test ./cmd/nodemesh -run Reference -update", referencePath)
	}
}

// TestHelpListsEveryOption checks that `nodemesh <cmd> --help` (and for
// dns, `nodemesh dns patch --help`) prints every option with its
// environment variable and default.
func TestHelpListsEveryOption(t *testing.T) {
	for _, c := range commands() {
		if c.Configuration == nil {
			continue
		}
		args := []string{"nodemesh", c.Name, "--help"}
		if c.Name == "dns" {
			args = []string{"nodemesh", "dns", "patch", "--help"}
		}
		out := helpOutput(t, args)
		for _, o := range cmdline.Options(c.Configuration) {
			line := fmt.Sprintf("--%s", o.Kebab)
			if !strings.Contains(out, line) || !strings.Contains(out, o.Env()) || !strings.Contains(out, fmt.Sprintf("%q", o.Default)) {
				t.Errorf("%s lacks %s / %s / default %q", strings.Join(args[1:], " "), line, o.Env(), o.Default)
			}
		}
	}
}

// helpOutput runs the CLI as main does with args and returns what it
// printed on stdout (paerser prints help there).
func helpOutput(t *testing.T, args []string) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, osArgs := os.Stdout, os.Args
	os.Stdout, os.Args = w, args
	defer func() { os.Stdout, os.Args = stdout, osArgs }()
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	root, cfgs := newRoot()
	os.Args = cmdline.Normalize(os.Args, cfgs...)
	if err := cli.Execute(root); err != nil {
		t.Errorf("%v: %v", args, err)
	}
	w.Close()
	return <-done
}

func renderReference() []byte {
	var b bytes.Buffer
	b.WriteString(`# Configuration reference

Generated from the code by ` + "`go test ./cmd/nodemesh -run Reference -update`" + `;
a test fails when it is out of date.

Each subcommand reads its static configuration from exactly one source, in
this order: the file named by ` + "`--config-file`" + ` (YAML or TOML, keys as
the option names without dashes, e.g. ` + "`watchNamespaces`" + `), else
command-line flags, else environment variables. Flags are kebab-case;
paerser's lower-case form (` + "`--watchnamespaces`" + `) is accepted too.
List options take comma-separated values.

Service annotations are listed in [traffic-policy.md](traffic-policy.md) and
[topology.md](topology.md); DNS behaviour in [dns.md](dns.md).
`)
	for _, c := range commands() {
		if c.Configuration == nil {
			continue
		}
		fmt.Fprintf(&b, "\n## nodemesh %s\n\n%s\n\n", c.Name, c.Description)
		b.WriteString("| flag | environment | default | description |\n|---|---|---|---|\n")
		for _, o := range cmdline.Options(c.Configuration) {
			def := o.Default
			if def == "" {
				def = "—"
			} else {
				def = "`" + def + "`"
			}
			fmt.Fprintf(&b, "| `--%s` | `%s` | %s | %s |\n", o.Kebab, o.Env(), def, strings.ReplaceAll(o.Description, "|", `\|`))
		}
	}
	return b.Bytes()
}
