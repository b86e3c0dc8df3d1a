package integration_test

import (
	"testing"

	"github.com/nodemesh/nodemesh/integration/harness"
)

// TestMain runs the integration tests inside the harness's private network
// namespace; see harness.Main.
func TestMain(m *testing.M) {
	harness.Main(m)
}
