package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/traefik/paerser/cli"
	"k8s.io/client-go/kubernetes"

	"github.com/nodemesh/nodemesh/pkg/edgestats"
	"github.com/nodemesh/nodemesh/pkg/status"
)

// statusConfig is the configuration of `nodemesh status [-n ns] [svc]`.
type statusConfig struct {
	ControllerAccess
	// ProxyUrls, not ProxyURLs: the option name is derived from the field
	// name, and "URLs" would give --proxy-ur-ls.
	ProxyUrls []string      `description:"Admin URLs of the proxies to read edge metrics from (comma separated); empty means every proxy pod, through the apiserver." export:"true"`
	Namespace string        `description:"Show only the services of this namespace (-n)." export:"true"`
	Window    time.Duration `description:"Observed split weights over this window (two scrapes); 0 means since the proxies started." export:"true"`
	Output    string        `description:"Output format: text or json (-o)." export:"true"`
}

func newStatusCommand() *cli.Command {
	cfg := &statusConfig{ControllerAccess: defaultControllerAccess(), Output: "text"}
	return opsCommand("status", "show mesh services: names, traffic type, shadow, endpoints per node, split weights intended and observed, access rules; nodemesh status [-n ns] [service]",
		cfg, map[string]string{"n": "namespace", "o": "output"}, func(ctx context.Context, args []string) error { return runStatus(ctx, cfg, args) })
}

func runStatus(ctx context.Context, cfg *statusConfig, args []string) error {
	if len(args) > 1 {
		return fmt.Errorf("at most one service name, got %q", args)
	}
	if cfg.Output != "text" && cfg.Output != "json" {
		return fmt.Errorf("output %q: want text or json", cfg.Output)
	}
	kube, err := kubeClient(cfg.Kubeconfig, cfg.ControllerURL == "" || len(cfg.ProxyUrls) == 0)
	if err != nil {
		return err
	}
	ctrl, err := controllerClient(kube, cfg.MeshNamespace, cfg.ControllerURL, cfg.ControllerService)
	if err != nil {
		return err
	}
	topo, err := ctrl.Topology(ctx)
	if err != nil {
		return err
	}
	tbl, err := ctrl.Table(ctx)
	if err != nil {
		return err
	}
	in := status.Input{Topology: topo, Table: tbl, Namespace: cfg.Namespace}
	if len(args) == 1 {
		in.Name = args[0]
	}
	targets, err := proxyTargets(ctx, kube, cfg.MeshNamespace, cfg.ProxyUrls)
	if err == nil {
		in.Stats, in.EdgeSeries, err = observe(ctx, targets, cfg.Window)
	}
	if err != nil {
		// Observed weights are a bonus: say why they are missing, go on.
		fmt.Fprintf(os.Stderr, "observed weights n/a: %v\n", err)
	}
	services := status.Build(in)
	if len(services) == 0 && in.Name != "" {
		return fmt.Errorf("no mesh service %q%s", in.Name, inNamespace(cfg.Namespace))
	}
	if cfg.Output == "json" {
		return status.WriteJSON(os.Stdout, services)
	}
	return status.WriteText(os.Stdout, services)
}

func inNamespace(ns string) string {
	if ns == "" {
		return ""
	}
	return " in namespace " + ns
}

// observe reads edge figures: cumulative counts with no window, else the
// counts of the window between two scrapes.
func observe(ctx context.Context, targets []edgestats.Target, window time.Duration) ([]edgestats.Stat, bool, error) {
	first, err := edgestats.Scrape(ctx, targets)
	if first.Proxies == 0 {
		return nil, false, err
	}
	if window <= 0 {
		return edgestats.Rates(nil, first, 0), first.EdgeSeries, nil
	}
	began := time.Now()
	select {
	case <-time.After(window):
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	second, err := edgestats.Scrape(ctx, targets)
	if second.Proxies == 0 {
		return nil, false, err
	}
	return edgestats.Rates(first, second, time.Since(began)), second.EdgeSeries, nil
}

// proxyTargets is the proxies to scrape: the URLs given, else every proxy
// pod through the apiserver's pod proxy.
func proxyTargets(ctx context.Context, kube kubernetes.Interface, meshNamespace string, urls []string) ([]edgestats.Target, error) {
	var list []string
	for _, u := range urls {
		// "--proxy-urls=a,b" and repeated flags both work.
		for _, p := range strings.Split(u, ",") {
			if p = strings.TrimSpace(p); p != "" {
				list = append(list, p)
			}
		}
	}
	if len(list) > 0 {
		return edgestats.URLTargets(list, nil), nil
	}
	if kube == nil {
		return nil, fmt.Errorf("no proxy URLs and no Kubernetes client")
	}
	pods, err := edgestats.ProxyPods(ctx, kube, meshNamespace)
	if err != nil {
		return nil, err
	}
	if len(pods) == 0 {
		return nil, fmt.Errorf("no running proxy pod in %s", meshNamespace)
	}
	return edgestats.PodProxyTargets(kube, pods), nil
}

// kubeClient makes a client from the kubeconfig when needed; when not
// (every address given as a URL) a missing kubeconfig is no error.
func kubeClient(path string, needed bool) (kubernetes.Interface, error) {
	rc, err := restConfigFor(path)
	if err != nil {
		if needed {
			return nil, err
		}
		return nil, nil
	}
	return kubernetes.NewForConfig(rc)
}
