// Package cmdline wires nodemesh's subcommands to github.com/traefik/paerser.
//
// Each subcommand's static configuration is a struct. paerser loads it from
// exactly one source, in this order: a file given by --config-file (YAML or
// TOML), else command-line flags, else NODEMESH_* environment variables.
//
// paerser names flags by lower-casing Go field names ("--watchnamespaces").
// Our documented names are kebab-case ("--watch-namespaces",
// NODEMESH_WATCH_NAMESPACES). paerser has no hook for naming, so Normalize
// rewrites the documented names to paerser's before it parses, and PrintHelp
// prints the documented names; both forms are accepted.
package cmdline

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"unicode"

	"github.com/traefik/paerser/cli"
	"github.com/traefik/paerser/flag"
)

// EnvPrefix prefixes every environment variable nodemesh reads.
const EnvPrefix = "NODEMESH_"

// ConfigFileFlag is the field every configuration struct has for
// --config-file.
const ConfigFileFlag = "ConfigFile"

// New returns a subcommand whose configuration cfg (a pointer to a struct
// with a ConfigFile string field, already holding its defaults) is loaded
// from a file, flags or the environment before run is called. run gets a
// context cancelled on SIGINT or SIGTERM.
func New(name, description string, cfg any, run func(ctx context.Context) error) *cli.Command {
	cmd := &cli.Command{
		Name:          name,
		Description:   description,
		Configuration: cfg,
		Resources: []cli.ResourceLoader{
			&cli.FileLoader{ConfigFileFlag: ConfigFileFlag, BasePaths: []string{"/etc/nodemesh/" + name, "./nodemesh-" + name}},
			&cli.FlagLoader{},
			&cli.EnvLoader{Prefix: EnvPrefix},
		},
		Run: func([]string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return run(ctx)
		},
	}
	cmd.CustomHelpFunc = func(w io.Writer, c *cli.Command) error { return PrintHelp(w, c) }
	return cmd
}

// Normalize rewrites kebab-case flags in args and NODEMESH_ variables with
// underscores between words into the names paerser expects. cfgs are the
// configuration structs of every subcommand.
func Normalize(args []string, cfgs ...any) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = normalizeFlag(a)
	}
	for _, cfg := range cfgs {
		for _, o := range Options(cfg) {
			documented := envName(o.Kebab)
			paerser := EnvPrefix + strings.ToUpper(strings.ReplaceAll(o.Path, ".", "_"))
			if v, ok := os.LookupEnv(documented); ok && documented != paerser {
				_ = os.Setenv(paerser, v)
				_ = os.Unsetenv(documented)
			}
		}
	}
	return out
}

func normalizeFlag(arg string) string {
	if !strings.HasPrefix(arg, "--") || len(arg) < 3 {
		return arg
	}
	name, value, hasValue := strings.Cut(arg[2:], "=")
	name = strings.ReplaceAll(name, "-", "")
	if hasValue {
		return "--" + name + "=" + value
	}
	return "--" + name
}

// Option is one documented configuration option.
type Option struct {
	// Path is paerser's lower-case dotted path ("proxy.listenaddr").
	Path string
	// Kebab is the documented dotted kebab-case path ("proxy.listen-addr").
	Kebab       string
	Description string
	Default     string
}

// Env returns the documented environment variable for o.
func (o Option) Env() string { return envName(o.Kebab) }

func envName(kebab string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(kebab))
}

// Options lists cfg's options with their current values as defaults, sorted
// by name.
func Options(cfg any) []Option {
	flats, err := flag.Encode(cfg)
	if err != nil {
		return nil
	}
	kebab := map[string]string{}
	collectKebab(reflect.TypeOf(cfg), "", "", kebab)
	var opts []Option
	for _, f := range flats {
		k, ok := kebab[f.Name]
		if !ok {
			continue // a struct node; its leaves are listed
		}
		opts = append(opts, Option{Path: f.Name, Kebab: k, Description: f.Description, Default: f.Default})
	}
	sort.Slice(opts, func(i, j int) bool { return opts[i].Kebab < opts[j].Kebab })
	return opts
}

func collectKebab(t reflect.Type, path, kebab string, out map[string]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		out[path] = kebab
		return
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() || f.Tag.Get("label") == "-" {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && ft.Kind() == reflect.Struct { // paerser flattens an embedded struct
			collectKebab(ft, path, kebab, out)
			continue
		}
		p, k := strings.ToLower(f.Name), toKebab(f.Name)
		if path != "" {
			p, k = path+"."+p, kebab+"."+k
		}
		if ft.Kind() == reflect.Struct && ft.PkgPath() != "time" && !implementsText(ft) {
			collectKebab(ft, p, k, out)
			continue
		}
		out[p] = k
	}
}

func implementsText(t reflect.Type) bool {
	type textUnmarshaler interface{ UnmarshalText([]byte) error }
	return reflect.PointerTo(t).Implements(reflect.TypeOf((*textUnmarshaler)(nil)).Elem())
}

// toKebab turns "WatchNamespaces" into "watch-namespaces", "HTTPPort"
// into "http-port" and "ProxyURLs" into "proxy-urls".
func toKebab(s string) string {
	r := []rune(s)
	// pluralAcronym: an upper-case run ending in a plural "s" ("URLs").
	pluralAcronym := func(i int) bool {
		return i+1 < len(r) && r[i+1] == 's' && (i+2 == len(r) || unicode.IsUpper(r[i+2]))
	}
	var b strings.Builder
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 && (unicode.IsLower(r[i-1]) || (i+1 < len(r) && unicode.IsLower(r[i+1]) && unicode.IsUpper(r[i-1]) && !pluralAcronym(i))) {
			b.WriteByte('-')
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}

// PrintHelp prints a command's usage with every option, its environment
// variable and its default.
func PrintHelp(w io.Writer, c *cli.Command) error {
	fmt.Fprintf(w, "nodemesh %s: %s\n\n", c.Name, c.Description)
	if c.Configuration == nil {
		return nil
	}
	fmt.Fprintf(w, "Usage: nodemesh %s [--option=value ...]\n\n", c.Name)
	fmt.Fprintln(w, "Configuration comes from one source: --config-file (YAML or TOML, keys as the Go field names), else flags, else environment variables.")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OPTION\tENVIRONMENT\tDEFAULT\tDESCRIPTION")
	for _, o := range Options(c.Configuration) {
		fmt.Fprintf(tw, "--%s\t%s\t%q\t%s\n", o.Kebab, o.Env(), o.Default, o.Description)
	}
	return tw.Flush()
}
