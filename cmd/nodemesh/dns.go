package main

import (
	"github.com/traefik/paerser/cli"

	"github.com/nodemesh/nodemesh/pkg/cmdline"
)

// dnsConfig is the static configuration of "nodemesh dns".
type dnsConfig struct {
	ConfigFile string `description:"Configuration file (YAML or TOML)." export:"true"`
}

func newDNSCommand() *cli.Command {
	return cmdline.New("dns", "dns (not built yet)", &dnsConfig{}, notBuilt("nodemesh dns"))
}
