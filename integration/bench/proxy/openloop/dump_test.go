package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteDump(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dump.txt")
	// Requests 0 and 1 are warm-up; 2 was answered in 150 µs, 3 failed
	// and 4 was never sent.
	samples := []int64{10, 20, 150_000, -1, -2}
	sc := newSchedule(1, time.Second, 2*time.Millisecond, 3*time.Millisecond, time.Millisecond)
	if err := writeDump(path, 1_000_000, 500_000, sc, samples); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "2000000 150000\n2500000 -1\n3000000 -2\n"
	if string(got) != want {
		t.Fatalf("dump:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteDumpNamesServers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dump.txt")
	// Two servers in blocks of two requests; the first round is warm-up.
	sc := newSchedule(2, 2*time.Millisecond, time.Millisecond, 2*time.Millisecond, time.Millisecond)
	samples := []int64{1, 1, 1, 1, 100, 200, 300, 400}
	if err := writeDump(path, 0, 1000, sc, samples); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "4000 100 0\n5000 200 0\n6000 300 1\n7000 400 1\n"
	if string(got) != want {
		t.Fatalf("dump:\n%s\nwant:\n%s", got, want)
	}
}

func TestSchedule(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name                       string
		servers                    int
		block, warmup, duration    time.Duration
		wantPer, wantSkip, wantAll int
		wantMeasured               time.Duration
	}{
		// One server: the plain schedule, whatever the block.
		{"one server", 1, 1000 * ms, 3 * ms, 10 * ms, 1, 3, 13, 10 * ms},
		{"three servers", 3, 4 * ms, 4 * ms, 8 * ms, 4, 12, 36, 8 * ms},
		// Warm-up and duration round up to whole blocks.
		{"partial blocks", 2, 4 * ms, 1 * ms, 5 * ms, 4, 8, 24, 8 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := newSchedule(tc.servers, tc.block, tc.warmup, tc.duration, ms)
			if sc.per != tc.wantPer || sc.skip != tc.wantSkip || sc.total != tc.wantAll || sc.measured != tc.wantMeasured {
				t.Fatalf("per %d skip %d total %d measured %v, want %d %d %d %v",
					sc.per, sc.skip, sc.total, sc.measured, tc.wantPer, tc.wantSkip, tc.wantAll, tc.wantMeasured)
			}
			// Every request belongs to exactly one server's sequence, in
			// order.
			seen := make([]int, sc.total)
			for s := range tc.servers {
				last := -1
				for k := 0; ; k++ {
					i := sc.request(s, k)
					if i >= sc.total {
						break
					}
					if i <= last {
						t.Fatalf("server %d: request %d is %d, after %d", s, k, i, last)
					}
					if sc.target(i) != s {
						t.Fatalf("request %d is server %d's, target says %d", i, s, sc.target(i))
					}
					seen[i]++
					last = i
				}
			}
			for i, n := range seen {
				if n != 1 {
					t.Fatalf("request %d scheduled %d times", i, n)
				}
			}
		})
	}
}
