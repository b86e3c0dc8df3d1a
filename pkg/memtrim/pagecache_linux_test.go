package memtrim

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pageCacheResident counts the pages of the executable's read-only mappings
// that are in the page cache, mapped into this process or not (mincore(2)
// reports the page cache for file mappings).
func pageCacheResident(t *testing.T) int {
	t.Helper()
	regions, err := ownRegions()
	if err != nil {
		t.Fatal(err)
	}
	page := uintptr(os.Getpagesize())
	n := 0
	for _, r := range regions {
		vec := make([]byte, (r.End-r.Start+page-1)/page)
		if _, _, errno := unix.Syscall(unix.SYS_MINCORE, r.Start, r.End-r.Start, uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
			t.Fatalf("mincore: %v", errno)
		}
		for _, v := range vec {
			n += int(v & 1)
		}
	}
	return n
}

// syncExecutable writes back the test binary's pages: the linker has just
// written it, and reclaim would not drop dirty pages either way. On a node
// the image's files are old and clean.
func syncExecutable(t *testing.T) {
	t.Helper()
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// Unmap takes the pages out of the process but leaves them in the page
// cache: a page the process runs again comes back by a minor fault, not by
// a read from disk. Evict takes them out of the page cache too.
func TestExecutablePageCache(t *testing.T) {
	syncExecutable(t)
	before := pageCacheResident(t)
	if _, err := Executable(Unmap); err != nil {
		t.Fatalf("Executable(Unmap): %v", err)
	}
	after := pageCacheResident(t)
	t.Logf("Unmap: executable pages in the page cache: %d before, %d after", before, after)
	if after < before*9/10 {
		t.Errorf("Unmap evicted executable pages from the page cache: %d → %d", before, after)
	}
	if _, err := Executable(Evict); err != nil {
		t.Fatalf("Executable(Evict): %v", err)
	}
	evicted := pageCacheResident(t)
	t.Logf("Evict: executable pages in the page cache: %d before, %d after", after, evicted)
	if evicted > after*8/10 {
		t.Errorf("Evict left executable pages in the page cache: %d → %d", after, evicted)
	}
}
