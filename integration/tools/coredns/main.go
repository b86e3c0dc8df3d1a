// Command coredns runs CoreDNS v1.13.1 with its standard plugin set, for the
// integration harness and the demo.
package main

import (
	_ "github.com/coredns/coredns/core/plugin" // registers every standard plugin

	"github.com/coredns/coredns/coremain"
)

func main() { coremain.Run() }
