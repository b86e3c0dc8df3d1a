package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/traefik/paerser/cli"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/nodemesh/nodemesh/pkg/cmdline"
	"github.com/nodemesh/nodemesh/pkg/controller"
	"github.com/nodemesh/nodemesh/pkg/memtrim"
)

// controllerTrimDelay is when the controller drops its start-up pages: by
// then its caches have usually synced and its first table is built, so the
// pages that work needed are not dropped only to come back at once.
const controllerTrimDelay = 20 * time.Second

func newControllerCommand() *cli.Command {
	cfg := controller.DefaultConfig()
	return cmdline.New("controller",
		"watch the cluster, build and serve the routing table, keep the shadow services",
		&cfg, func(ctx context.Context) error { return runController(ctx, cfg) })
}

func runController(ctx context.Context, cfg controller.Config) error {
	sampleHeapOnlyIfServed(cfg.Pprof)
	if cfg.GCPercent > 0 {
		debug.SetGCPercent(cfg.GCPercent)
	}
	// --kubeconfig, else $KUBECONFIG and ~/.kube/config, else the in-cluster
	// service account.
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = cfg.Kubeconfig
	restConfig, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return fmt.Errorf("kubernetes client configuration: %w", err)
	}
	c, err := controller.New(cfg, restConfig)
	if err != nil {
		return err
	}
	if cfg.TrimStartupPages {
		stopTrim := memtrim.ExecutableAfter(controllerTrimDelay, memtrim.Evict, klog.InfoS)
		defer stopTrim()
	}
	return c.Run(ctx)
}
