package main

import (
	"fmt"

	"github.com/traefik/paerser/cli"

	"github.com/nodemesh/nodemesh/pkg/version"
)

func newVersionCommand() *cli.Command {
	return &cli.Command{
		Name:        "version",
		Description: "print the version of this build",
		Run: func([]string) error {
			fmt.Println(version.String())
			return nil
		},
	}
}
