// Package memtrim hands back to the kernel the pages of the running
// executable that start-up touched.
//
// nodemesh is one binary for every role. It links client-go and every
// Kubernetes API group for the controller, and Go runs every linked
// package's initialisers in every subcommand: registering the API types
// touches about 25 MiB of the executable's code and read-only data. Those
// pages are clean and backed by the file, so the kernel could drop them at
// any time, but while they stay mapped they count in the process's RSS and
// in its container's memory working set, though the node proxy never runs
// that code again. Executable drops them now (madvise, see Mode), and
// marks the mappings for random access (MADV_RANDOM), so that a page the
// process still runs, read back from the file on its next use, is read
// without the readahead that would bring its unused neighbours back too.
// A page still in the page cache comes back with its neighbours either way
// (see Unmap).
//
// Nothing in the standard library or x/sys does this walk of
// /proc/self/maps, hence this package.
package memtrim

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Mode is how Executable drops the pages.
type Mode int

const (
	// Unmap takes the pages out of the process only (MADV_DONTNEED): they
	// stay in the page cache, so the next use of one is a minor fault.
	// For the node proxy, whose requests would otherwise wait on a disk
	// read: with Evict, its first use of each page after the trim was a
	// major fault taken while holding its one P, about 330 of them in the
	// benchmark's 10 s latency run (2026-12-06), none with Unmap. A fault
	// on a page still cached maps its neighbours too (fault-around, and
	// the page cache's large folios), MADV_RANDOM or not: 64 pages around
	// one touched page on the development machine (kernel 6.18), against
	// that page alone after Evict. So more comes back than with Evict: in
	// the proxy benchmark, no
	// measurable change with the small table and 6 MiB more with 1,000
	// services (docs/proxy.md).
	Unmap Mode = iota
	// Evict also evicts the clean pages from the page cache (MADV_PAGEOUT,
	// Linux 5.4 and later), so a page used again is read from the file,
	// alone. For the controller, whose memory budget is the tighter one
	// and which serves no per-request latency.
	Evict
)

// Region is one mapping of the executable.
type Region struct {
	Start, End uintptr
	Perms      string
}

// executableRegions parses maps (the text of /proc/self/maps) for the
// read-only mappings of exe: its code and read-only data. Writable
// mappings hold data that may be dirty and are left alone.
func executableRegions(maps []byte, exe string) ([]Region, error) {
	var out []Region
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || strings.Join(f[5:], " ") != exe || strings.Contains(f[1], "w") || !strings.HasPrefix(f[1], "r") {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("memtrim: bad maps line %q", sc.Text())
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("memtrim: bad maps line %q", sc.Text())
		}
		out = append(out, Region{Start: uintptr(start), End: uintptr(end), Perms: f[1]})
	}
	return out, sc.Err()
}

// residentBytes returns the process's resident set size from
// /proc/self/statm.
func residentBytes() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("memtrim: short /proc/self/statm %q", b)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, err
	}
	return pages * int64(os.Getpagesize()), nil
}

// ExecutableAfter calls Executable once d from now and reports the outcome
// through info (slog's Logger.Info and klog.InfoS both fit). The returned
// stop cancels it if it has not run yet.
func ExecutableAfter(d time.Duration, m Mode, info func(msg string, keysAndValues ...any)) (stop func() bool) {
	return time.AfterFunc(d, func() {
		released, err := Executable(m)
		if err != nil {
			info("start-up pages of the executable kept", "reason", err.Error())
			return
		}
		info("start-up pages of the executable dropped", "rssFreedMiB", fmt.Sprintf("%.1f", float64(released)/(1<<20)))
	}).Stop
}
