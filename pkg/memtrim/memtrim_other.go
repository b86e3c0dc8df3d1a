//go:build !linux

package memtrim

import "errors"

// Executable is supported on Linux only.
func Executable(Mode) (int64, error) {
	return 0, errors.New("memtrim: only on Linux")
}
