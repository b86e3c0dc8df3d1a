package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/traefik/paerser/cli"
	"golang.org/x/term"

	"github.com/nodemesh/nodemesh/pkg/dns"
	"github.com/nodemesh/nodemesh/pkg/edgestats"
	"github.com/nodemesh/nodemesh/pkg/top"
)

// topConfig is the configuration of `nodemesh top`.
type topConfig struct {
	ConfigFile    string `description:"Configuration file (YAML or TOML)." export:"true"`
	Kubeconfig    string `description:"Path to a kubeconfig; empty means $KUBECONFIG, ~/.kube/config, then the in-cluster service account." export:"true"`
	MeshNamespace string `description:"Namespace of the proxies." export:"true"`
	// ProxyUrls, not ProxyURLs: the option name is derived from the field
	// name, and "URLs" would give --proxy-ur-ls.
	ProxyUrls  []string      `description:"Admin URLs of the proxies to read (comma separated); empty means every proxy pod, through the apiserver." export:"true"`
	Namespace  string        `description:"Show only edges whose source or destination is in this namespace (-n)." export:"true"`
	Sort       string        `description:"Sort edges by rps (busiest first), success (worst first) or p99 (slowest first)." export:"true"`
	Interval   time.Duration `description:"Refresh interval." export:"true"`
	Once       bool          `description:"Print one frame (over one interval) and exit." export:"true"`
	Iterations int           `description:"Print this many frames and exit; 0 means until interrupted." export:"true"`
}

func newTopCommand() *cli.Command {
	cfg := &topConfig{MeshNamespace: dns.DefaultMeshNamespace, Sort: edgestats.SortRPS, Interval: time.Second}
	return opsCommand("top", "live requests per second, success rate and p50/p99 latency per edge, from the proxies' metrics",
		cfg, map[string]string{"n": "namespace"}, func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("top takes no arguments, got %q", args)
			}
			return runTop(ctx, cfg)
		})
}

func runTop(ctx context.Context, cfg *topConfig) error {
	kube, err := kubeClient(cfg.Kubeconfig, len(cfg.ProxyUrls) == 0)
	if err != nil {
		return err
	}
	frames := cfg.Iterations
	if cfg.Once {
		frames = 1
	}
	return top.Run(ctx, top.Options{
		Targets: func(ctx context.Context) ([]edgestats.Target, error) {
			return proxyTargets(ctx, kube, cfg.MeshNamespace, cfg.ProxyUrls)
		},
		Interval:  cfg.Interval,
		Sort:      cfg.Sort,
		Namespace: cfg.Namespace,
		Frames:    frames,
		Out:       os.Stdout,
		Terminal:  term.IsTerminal(int(os.Stdout.Fd())),
	})
}
