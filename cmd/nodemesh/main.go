// Command nodemesh is the single binary of the nodemesh service mesh. Each
// role is a subcommand: controller, proxy, dns, version.
package main

import (
	"fmt"
	"os"

	"github.com/traefik/paerser/cli"

	"github.com/nodemesh/nodemesh/pkg/cmdline"
)

// commands lists every subcommand; each lives in its own file.
func commands() []*cli.Command {
	return []*cli.Command{
		newControllerCommand(),
		newProxyCommand(),
		newDNSCommand(),
		newVersionCommand(),
		newCheckCommand(),
		newStatusCommand(),
		newTopCommand(),
		newMetricsAPICommand(),
	}
}

// newRoot returns the root command with every subcommand, and their
// configuration structs.
func newRoot() (*cli.Command, []any) {
	root := &cli.Command{
		Name:        "nodemesh",
		Description: "a service mesh for Kubernetes with one proxy per node and no sidecars",
	}
	var cfgs []any
	for _, c := range commands() {
		if err := root.AddCommand(c); err != nil {
			panic(err) // only when a child is named like its parent: a programming error
		}
		if c.Configuration != nil {
			cfgs = append(cfgs, c.Configuration)
		}
	}
	return root, cfgs
}

func main() {
	root, cfgs := newRoot()
	os.Args = cmdline.Normalize(os.Args, cfgs...)
	if err := cli.Execute(root); err != nil {
		fmt.Fprintln(os.Stderr, "nodemesh:", err)
		os.Exit(1)
	}
}
