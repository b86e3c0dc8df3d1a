package memtrim

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Executable asks the kernel to drop the resident pages of the running
// executable's read-only mappings, and returns how much the RSS fell. On
// kernels without MADV_PAGEOUT it returns an error and changes nothing.
func Executable() (released int64, err error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	regions, err := executableRegions(maps, exe)
	if err != nil {
		return 0, err
	}
	if len(regions) == 0 {
		return 0, errors.New("memtrim: no mapping of " + exe + " in /proc/self/maps")
	}
	before, err := residentBytes()
	if err != nil {
		return 0, err
	}
	for _, r := range regions {
		// The raw call takes the range as numbers: the mapping is never
		// read through a Go pointer.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, r.Start, r.End-r.Start, unix.MADV_PAGEOUT); errno != 0 {
			return 0, errno
		}
	}
	after, err := residentBytes()
	if err != nil {
		return 0, err
	}
	return before - after, nil
}
