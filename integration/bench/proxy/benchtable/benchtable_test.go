package benchtable

import (
	"testing"

	"github.com/nodemesh/nodemesh/pkg/table"
)

func TestBuiltTablesValidate(t *testing.T) {
	tests := []struct {
		name      string
		opts      Options
		wantHTTP  int
		wantTCP   int
		endpoints int
	}{
		{"small", Options{HTTPPort: 18100, HTTPBackend: "127.0.0.1:18080", TCPProxyPort: 18101, TCPBackend: "127.0.0.1:18081"}, 1, 1, 1},
		{"large", Options{HTTPPort: 18100, HTTPBackend: "127.0.0.1:18080", Services: 1000, EndpointsPerService: 10}, 1001, 0, 10001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := Build(tt.opts)
			if err := table.Validate(tb); err != nil {
				t.Fatal(err)
			}
			if len(tb.HTTP) != tt.wantHTTP || len(tb.TCP) != tt.wantTCP {
				t.Fatalf("%d HTTP and %d TCP routes, want %d and %d", len(tb.HTTP), len(tb.TCP), tt.wantHTTP, tt.wantTCP)
			}
			n := 0
			seen := map[string]bool{}
			for _, r := range tb.HTTP {
				for _, e := range r.Backends[0].Endpoints {
					n++
					seen[e.Address] = true
				}
			}
			if n != tt.endpoints || len(seen) != n {
				t.Errorf("%d endpoints (%d distinct), want %d distinct", n, len(seen), tt.endpoints)
			}
		})
	}
}
