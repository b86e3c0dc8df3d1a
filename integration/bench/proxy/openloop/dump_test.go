package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteDump(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dump.txt")
	// Requests 0 and 1 are warm-up; 2 was answered in 150 µs, 3 failed
	// and 4 was never sent.
	samples := []int64{10, 20, 150_000, -1, -2}
	if err := writeDump(path, 1_000_000, 500_000, 2, samples); err != nil {
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
