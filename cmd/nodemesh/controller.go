package main

import (
	"github.com/traefik/paerser/cli"

	"github.com/nodemesh/nodemesh/pkg/cmdline"
)

// controllerConfig is the static configuration of "nodemesh controller".
type controllerConfig struct {
	ConfigFile string `description:"Configuration file (YAML or TOML)." export:"true"`
}

func newControllerCommand() *cli.Command {
	return cmdline.New("controller", "controller (not built yet)", &controllerConfig{}, notBuilt("nodemesh controller"))
}
