//go:build !race

package httpmatch

// raceEnabled: see race_test.go.
const raceEnabled = false
