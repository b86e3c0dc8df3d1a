//go:build !race

package acl

// raceEnabled: see race_test.go.
const raceEnabled = false
