// Command gentable writes a benchmark routing table (see package
// benchtable) as JSON to stdout.
package main

import (
	"flag"
	"log"
	"os"

	"github.com/nodemesh/nodemesh/integration/bench/proxy/benchtable"
	"github.com/nodemesh/nodemesh/pkg/table"
)

func main() {
	var o benchtable.Options
	httpPort := flag.Int("http-port", 18100, "proxy HTTP listener port")
	tcpPort := flag.Int("tcp-proxy-port", 0, "TCP proxy port; 0 adds no TCP route")
	flag.StringVar(&o.HTTPBackend, "http-backend", "127.0.0.1:18080", "backend HTTP address")
	flag.StringVar(&o.TCPBackend, "tcp-backend", "127.0.0.1:18081", "backend TCP source address")
	flag.IntVar(&o.Services, "services", 0, "extra HTTP services that get no traffic")
	flag.IntVar(&o.EndpointsPerService, "endpoints-per-service", 10, "endpoints of each extra service")
	flag.IntVar(&o.EndpointOffset, "endpoint-offset", 0, "shift of the extra services' endpoint addresses")
	flag.Uint64Var(&o.Version, "version", 1, "table version")
	flag.Parse()
	o.HTTPPort, o.TCPProxyPort = int32(*httpPort), int32(*tcpPort)

	t := benchtable.Build(o)
	if err := table.Validate(t); err != nil {
		log.Fatal(err)
	}
	b, err := table.Encode(t)
	if err != nil {
		log.Fatal(err)
	}
	os.Stdout.Write(append(b, '\n'))
}
