package main

import (
	"context"
	"fmt"

	"github.com/traefik/paerser/cli"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nodemesh/nodemesh/pkg/cmdline"
	"github.com/nodemesh/nodemesh/pkg/metricsapi"
)

// newMetricsAPICommand is `nodemesh metrics-api`: SMI TrafficMetrics as an
// aggregated API, computed from the proxies' edge metrics. It is its own
// process (and Deployment) rather than part of the controller: it scrapes
// every proxy and answers the aggregator, work whose load and failures
// must not touch the controller that builds and serves the routing table,
// and it needs RBAC of its own (auth delegation) that the controller does
// not. Leave it out and nothing else changes.
func newMetricsAPICommand() *cli.Command {
	cfg := metricsapi.DefaultConfig()
	return cmdline.New("metrics-api",
		"serve SMI TrafficMetrics (metrics.smi-spec.io/v1alpha1) as an aggregated API, from the proxies' edge metrics",
		&cfg, func(ctx context.Context) error { return runMetricsAPI(ctx, cfg) })
}

func runMetricsAPI(ctx context.Context, cfg metricsapi.Config) error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = cfg.Kubeconfig
	restConfig, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return fmt.Errorf("kubernetes client configuration: %w", err)
	}
	s, err := metricsapi.New(cfg, restConfig)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}
