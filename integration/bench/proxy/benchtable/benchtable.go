// Package benchtable builds the routing tables the proxy benchmark loads:
// a small one that routes the benchmark's traffic, and a large one (1,000
// HTTP services, 10,000 endpoints by default) for the memory and reload
// figures.
package benchtable

import (
	"fmt"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// Options says where the benchmark's traffic goes.
type Options struct {
	// HTTPPort is the proxy's HTTP listener port. The benchmark route
	// serves Host "127.0.0.1:<HTTPPort>" (what wrk sends) and
	// "bench.bench.mesh" without a port.
	HTTPPort int32
	// HTTPBackend is the backend's HTTP address, "ip:port".
	HTTPBackend string
	// TCPProxyPort and TCPBackend add a TCP route when TCPProxyPort > 0.
	TCPProxyPort int32
	TCPBackend   string
	// Services and EndpointsPerService add that many extra HTTP services
	// that receive no traffic (the large table).
	Services            int
	EndpointsPerService int
	// EndpointOffset shifts the extra services' endpoint addresses: two
	// tables with different offsets differ in every route (a reload's
	// worst case).
	EndpointOffset int
	// Version is the table version.
	Version uint64
}

// Build returns the table described by o. It is deterministic, and sorted
// as the controller sorts.
func Build(o Options) *table.Table {
	t := &table.Table{Schema: table.SchemaVersion, Version: o.Version}
	bench := table.ServiceRef{Namespace: "bench", Name: "bench"}
	t.HTTP = append(t.HTTP, table.HTTPRoute{
		Service:     bench,
		Port:        o.HTTPPort,
		Hosts:       []string{"127.0.0.1", "bench.bench.mesh"},
		DefaultPort: true,
		Scheme:      table.SchemeHTTP,
		Backends: []table.Backend{{
			Service:   bench,
			Weight:    1,
			Endpoints: []table.Endpoint{{Address: o.HTTPBackend}},
		}},
	})
	for i := range o.Services {
		// Namespaces "ns-000".."ns-099", ten services each: realistic
		// host names, and endpoints in 10.0.0.0/8 that no request reaches.
		svc := table.ServiceRef{Namespace: fmt.Sprintf("ns-%03d", i/10), Name: fmt.Sprintf("svc-%04d", i)}
		eps := make([]table.Endpoint, o.EndpointsPerService)
		for j := range eps {
			n := i*o.EndpointsPerService + j + o.EndpointOffset
			eps[j] = table.Endpoint{Address: fmt.Sprintf("10.%d.%d.%d:8080", 1+n>>16, n>>8&0xff, n&0xff), Node: fmt.Sprintf("node-%d", n%50)}
		}
		t.HTTP = append(t.HTTP, table.HTTPRoute{
			Service: svc,
			Port:    80,
			Hosts: []string{
				fmt.Sprintf("%s.%s.mesh", svc.Name, svc.Namespace),
				fmt.Sprintf("%s.%s.traefik.mesh", svc.Name, svc.Namespace),
				fmt.Sprintf("10.96.%d.%d", i>>8, i&0xff),
			},
			DefaultPort: true,
			Scheme:      table.SchemeHTTP,
			Backends:    []table.Backend{{Service: svc, Weight: 1, Endpoints: eps}},
		})
	}
	if o.TCPProxyPort > 0 {
		t.TCP = append(t.TCP, table.StreamRoute{
			Service:   bench,
			Port:      9000,
			ProxyPort: o.TCPProxyPort,
			Backends: []table.Backend{{
				Service:   bench,
				Weight:    1,
				Endpoints: []table.Endpoint{{Address: o.TCPBackend}},
			}},
		})
	}
	return t
}
