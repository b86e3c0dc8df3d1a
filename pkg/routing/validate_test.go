package routing_test

import (
	"testing"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// TestTablesValidate: every fixture's table passes the proxy's own checks,
// traffic policy included, so a bad annotation can never make proxies
// refuse a whole table: it must stop at the annotation parser.
func TestTablesValidate(t *testing.T) {
	for _, path := range fixtures(t) {
		s, opts := load(t, path)
		if err := table.Validate(build(s, opts)); err != nil {
			t.Errorf("%s: the table does not validate: %v", path, err)
		}
	}
}
