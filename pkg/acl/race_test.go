//go:build race

package acl

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// regexp's machine pool allocates and allocation counts mean nothing.
const raceEnabled = true
