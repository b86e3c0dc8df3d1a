// Package controllerbench measures `nodemesh controller` on the real harness
// apiserver with the shape Traefik Mesh's controller was measured with
// (shared/notes/anchors.md): N Services of 1 port and 5 ready pods, a
// TrafficSplit on every tenth. run.sh runs it; plain `go test` skips it.
package controllerbench

import (
	"flag"
	"testing"

	"github.com/nodemesh/nodemesh/integration/harness"
)

var (
	sizes  = flag.String("sizes", "100,1000,3000", "service counts to measure, comma separated")
	edits  = flag.Int("edits", 100, "TrafficSplit weight edits measured per size")
	out    = flag.String("out", "", "markdown file to write the results to; empty only logs them")
	run    = flag.Bool("bench", false, "run the benchmark (run.sh sets it); without it the test skips")
	reader = flag.Int("proxies", 10, "in-process table watchers standing in for node proxies")
	extra  = flag.String("controller-args", "", "extra flags for `nodemesh controller`, space separated (the defaults are measured without)")
)

func TestMain(m *testing.M) { harness.Main(m) }
