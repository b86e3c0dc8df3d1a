package benchtable_test

import (
	"testing"

	"github.com/nodemesh/nodemesh/integration/bench/proxy/benchtable"
	"github.com/nodemesh/nodemesh/pkg/proxy"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// BenchmarkApplyLargeTable measures what `make bench` reports as the reload
// time: the whole proxy's Apply (validate, HTTP prepare, TCP and UDP, HTTP
// commit) of the benchmark's large table (1,000 HTTP services, 10,000
// endpoints), alternating between two versions that differ in every route.
// It opens no listener: the large table has HTTP routes only.
func BenchmarkApplyLargeTable(b *testing.B) {
	cfg := proxy.DefaultConfig()
	cfg.TableFile = "unused" // the config needs a source; Apply is called directly
	cfg.LogLevel = "warn"    // one line per Apply otherwise
	p, err := proxy.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	opts := benchtable.Options{HTTPPort: 7000, HTTPBackend: "127.0.0.1:18080", Services: 1000, EndpointsPerService: 10}
	var tables [2]*table.Table
	for i := range tables {
		opts.EndpointOffset, opts.Version = i, uint64(i+1)
		tables[i] = benchtable.Build(opts)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.Apply(tables[i%2]); err != nil {
			b.Fatal(err)
		}
	}
}
