package memtrim

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestExecutableRegions(t *testing.T) {
	maps := `00400000-01eef000 r-xp 00000000 fe:00 9977925                            /usr/bin/nodemesh
01eef000-03fb2000 r--p 01aef000 fe:00 9977925                            /usr/bin/nodemesh
03fb2000-04057000 rw-p 03bb2000 fe:00 9977925                            /usr/bin/nodemesh
04057000-04100000 rw-p 00000000 00:00 0
7f4442b50000-7f4442ca6000 r-xp 00026000 fe:00 326269                     /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd1000-7ffd2000 r-xp 00000000 00:00 0                                  [vdso]
10000000-10001000 r-xp 00000000 fe:00 1                                  /opt/my tool
`
	got, err := executableRegions([]byte(maps), "/usr/bin/nodemesh")
	if err != nil {
		t.Fatal(err)
	}
	want := []Region{{0x400000, 0x1eef000, "r-xp"}, {0x1eef000, 0x3fb2000, "r--p"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("regions %+v, want %+v (read-only mappings of the executable only)", got, want)
	}
	if got, _ := executableRegions([]byte(maps), "/opt/my tool"); len(got) != 1 {
		t.Errorf("a path with a space: %+v", got)
	}
	if _, err := executableRegions([]byte("zz-yy r-xp 0 0 0 /x\n"), "/x"); err == nil {
		t.Error("a malformed range was accepted")
	}
}

// exeSmaps returns the lines starting with prefix ("Rss:", "VmFlags:") of
// the executable's read-only mappings in /proc/self/smaps.
func exeSmaps(t *testing.T, prefix string) []string {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		fields := strings.Fields(l)
		if len(fields) >= 6 && strings.Contains(fields[0], "-") && len(fields[1]) == 4 {
			in = strings.Join(fields[5:], " ") == exe && !strings.Contains(fields[1], "w")
			continue
		}
		if in && strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// exeResidentKB sums the resident size of the executable's read-only
// mappings.
func exeResidentKB(t *testing.T) int {
	total := 0
	for _, l := range exeSmaps(t, "Rss:") {
		kb, _ := strconv.Atoi(strings.Fields(l)[1])
		total += kb
	}
	return total
}

func TestExecutableDropsPages(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	for _, tc := range []struct {
		name string
		mode Mode
		// What the test still runs is paged back in at once. Evicted pages
		// come back a page each; unmapped ones a page-cache folio each,
		// which may be larger, so less of the drop shows.
		maxAfter func(before int) int
	}{
		{"evict", Evict, func(b int) int { return b / 2 }},
		{"unmap", Unmap, func(b int) int { return b * 9 / 10 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := exeResidentKB(t)
			released, err := Executable(tc.mode)
			if err != nil {
				t.Fatalf("Executable: %v", err)
			}
			after := exeResidentKB(t)
			t.Logf("executable's read-only pages resident: %d KiB before, %d KiB after; RSS fell by %d KiB", before, after, released/1024)
			if after >= tc.maxAfter(before) || released <= 0 {
				t.Errorf("resident executable pages %d KiB → %d KiB, RSS fell by %d KiB: not dropped", before, after, released/1024)
			}
		})
	}
}

func TestExecutableAdvisesRandomAccess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	if _, err := Executable(Unmap); err != nil {
		t.Fatalf("Executable: %v", err)
	}
	flags := exeSmaps(t, "VmFlags:")
	if len(flags) == 0 {
		t.Fatal("no VmFlags for the executable's mappings in /proc/self/smaps")
	}
	for _, f := range flags {
		// "rr": random-read advice, so faults do not read ahead.
		if !slices.Contains(strings.Fields(f)[1:], "rr") {
			t.Errorf("mapping without random-read advice after the trim: %q", f)
		}
	}
}

func TestExecutableAfterReports(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	got := make(chan string, 1)
	ExecutableAfter(0, Unmap, func(msg string, kv ...any) { got <- fmt.Sprint(msg, kv) })
	select {
	case m := <-got:
		if !strings.HasPrefix(m, "start-up pages of the executable dropped[rssFreedMiB ") {
			t.Errorf("report %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no report")
	}
	stop := ExecutableAfter(time.Hour, Unmap, func(string, ...any) { t.Error("a stopped trim ran") })
	if !stop() {
		t.Error("stop before the delay reported nothing to stop")
	}
}
