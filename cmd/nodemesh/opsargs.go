package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"

	"github.com/traefik/paerser/cli"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nodemesh/nodemesh/pkg/cmdline"
	"github.com/nodemesh/nodemesh/pkg/dns"
)

// opsCommand builds an operator command (check, status, top): options as
// every subcommand has them (pkg/cmdline), plus what kubectl users type:
// short flags (-n shop, -o json) and positional arguments in any place
// (`status web -n shop`). paerser stops parsing flags at the first
// positional argument and knows no short names, so the arguments are
// rewritten into long flags before its loaders see them, and run gets the
// positional ones.
func opsCommand(name, description string, cfg any, short map[string]string, run func(ctx context.Context, args []string) error) *cli.Command {
	c := cmdline.New(name, description, cfg, nil)
	c.AllowArg = true
	bools := boolOptions(cfg)
	for i, r := range c.Resources {
		c.Resources[i] = rewritingLoader{inner: r, rewrite: func(args []string) []string {
			flags, _ := splitArgs(args, short, bools)
			return flags
		}}
	}
	c.Run = func(args []string) error {
		_, positional := splitArgs(args, short, bools)
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return run(ctx, positional)
	}
	return c
}

// rewritingLoader hands a loader the rewritten arguments.
type rewritingLoader struct {
	inner   cli.ResourceLoader
	rewrite func([]string) []string
}

// Load implements cli.ResourceLoader.
func (l rewritingLoader) Load(args []string, cmd *cli.Command) (bool, error) {
	return l.inner.Load(l.rewrite(args), cmd)
}

// splitArgs separates flags from positional arguments. Flags come out as
// "--name=value" (or "--name" for booleans), short names replaced by their
// long ones; everything after "--" is positional.
func splitArgs(args []string, short map[string]string, bools map[string]bool) (flags, positional []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return flags, append(positional, args[i+1:]...)
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if long, ok := short[name]; ok && !strings.HasPrefix(a, "--") {
			name = long
		}
		name = strings.ToLower(strings.ReplaceAll(name, "-", ""))
		switch {
		case hasValue:
			flags = append(flags, "--"+name+"="+value)
		case bools[name] || name == "help" || name == "h" || i+1 == len(args):
			flags = append(flags, "--"+name)
		default:
			flags = append(flags, "--"+name+"="+args[i+1])
			i++
		}
	}
	return flags, positional
}

// boolOptions lists cfg's boolean options by paerser's flag name.
func boolOptions(cfg any) map[string]bool {
	out := map[string]bool{}
	var collect func(t reflect.Type)
	collect = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			switch {
			case f.Anonymous && f.Type.Kind() == reflect.Struct: // flattened, as paerser does
				collect(f.Type)
			case f.Type.Kind() == reflect.Bool:
				out[strings.ToLower(f.Name)] = true
			}
		}
	}
	collect(reflect.TypeOf(cfg))
	return out
}

// ControllerAccess is how an operator command reaches the cluster and the
// controller's API: the options that check and status share. It is
// embedded, and paerser flattens an embedded struct, so its options keep
// their names (--kubeconfig, not --controller-access.kubeconfig).
type ControllerAccess struct {
	ConfigFile        string `description:"Configuration file (YAML or TOML)." export:"true"`
	Kubeconfig        string `description:"Path to a kubeconfig; empty means $KUBECONFIG, ~/.kube/config, then the in-cluster service account." export:"true"`
	MeshNamespace     string `description:"Namespace of the controller, the proxies and the shadow services." export:"true"`
	ControllerURL     string `description:"Controller API base URL (e.g. http://127.0.0.1:9000 through a port-forward); empty means through the apiserver's service proxy to controller-service." export:"true"`
	ControllerService string `description:"Service and port of the controller API in the mesh namespace, as name:port." export:"true"`
}

// defaultControllerAccess is the mesh's default namespace and controller
// Service.
func defaultControllerAccess() ControllerAccess {
	return ControllerAccess{MeshNamespace: dns.DefaultMeshNamespace, ControllerService: "nodemesh-controller:9000"}
}

// restConfigFor loads a kubeconfig: the path given, else $KUBECONFIG and
// ~/.kube/config, else the in-cluster service account.
func restConfigFor(path string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration: %w", err)
	}
	return cfg, nil
}
