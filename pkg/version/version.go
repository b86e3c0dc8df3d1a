// Package version holds the build's version, stamped by the Makefile with
// -ldflags "-X github.com/nodemesh/nodemesh/pkg/version.Version=...".
package version

import (
	"fmt"
	"runtime"
)

// Version is the release or `git describe` of this build.
var Version = "dev"

// Commit is the git commit of this build.
var Commit = "unknown"

// String returns a one-line description of the build.
func String() string {
	return fmt.Sprintf("nodemesh %s (commit %s, %s, %s/%s)", Version, Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
