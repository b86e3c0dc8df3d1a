// Command nodemesh is the single binary of the nodemesh service mesh. Each
// role is a subcommand: controller, proxy, dns, version.
package main

import (
	"fmt"
	"os"

	"github.com/traefik/paerser/cli"

	"github.com/nodemesh/nodemesh/pkg/cmdline"
)

func main() {
	root := &cli.Command{
		Name:        "nodemesh",
		Description: "a service mesh for Kubernetes with one proxy per node and no sidecars",
	}
	// Every subcommand is registered here; each lives in its own file.
	cmds := []*cli.Command{
		newControllerCommand(),
		newProxyCommand(),
		newDNSCommand(),
		newVersionCommand(),
	}
	var cfgs []any
	for _, c := range cmds {
		if err := root.AddCommand(c); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if c.Configuration != nil {
			cfgs = append(cfgs, c.Configuration)
		}
	}
	os.Args = cmdline.Normalize(os.Args, cfgs...)
	if err := cli.Execute(root); err != nil {
		fmt.Fprintln(os.Stderr, "nodemesh:", err)
		os.Exit(1)
	}
}
