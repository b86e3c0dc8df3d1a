package main

import (
	"context"

	"github.com/traefik/paerser/cli"

	"github.com/nodemesh/nodemesh/pkg/cmdline"
	"github.com/nodemesh/nodemesh/pkg/proxy"
)

func newProxyCommand() *cli.Command {
	cfg := proxy.DefaultConfig()
	return cmdline.New("proxy",
		"the node proxy: serve the routing table's HTTP, TCP and UDP routes on this node",
		&cfg, func(ctx context.Context) error { return runProxy(ctx, cfg) })
}

func runProxy(ctx context.Context, cfg proxy.Config) error {
	sampleHeapOnlyIfServed(cfg.Pprof)
	p, err := proxy.New(cfg)
	if err != nil {
		return err
	}
	proxy.TuneRuntime(cfg)
	return p.Run(ctx)
}
