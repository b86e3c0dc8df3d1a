package main

import (
	"github.com/traefik/paerser/cli"

	"github.com/nodemesh/nodemesh/pkg/cmdline"
)

// proxyConfig is the static configuration of "nodemesh proxy".
type proxyConfig struct {
	ConfigFile string `description:"Configuration file (YAML or TOML)." export:"true"`
}

func newProxyCommand() *cli.Command {
	return cmdline.New("proxy", "proxy (not built yet)", &proxyConfig{}, notBuilt("nodemesh proxy"))
}
