package main

import (
	"bufio"
	"math"
	"strings"
	"testing"
)

func TestSignTest(t *testing.T) {
	for _, tc := range []struct {
		k, n int
		want float64
	}{
		{0, 0, 1},
		{1, 2, 1},
		{9, 9, 2.0 / 512},
		{0, 9, 2.0 / 512},
		{7, 9, 2 * 46.0 / 512}, // P(X >= 7) = (36+9+1)/512
		{2, 9, 2 * 46.0 / 512},
		{5, 9, 1},
	} {
		if got := signTest(tc.k, tc.n); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("signTest(%d, %d) = %v, want %v", tc.k, tc.n, got, tc.want)
		}
	}
}

func TestP99Repetitions(t *testing.T) {
	d := data{
		"direct":   {"p99_us": {1: 100, 2: 110, 3: 120}},
		"nodemesh": {"p99_us": {1: 300, 2: 200, 3: 150}, "gc_cycles_latency": {1: 12, 2: 11, 3: 14}},
		"haproxy":  {"p99_us": {1: 250, 2: 200, 3: 160}},
		"nginx":    {"p99_us": {1: 260, 3: 170}},
	}
	var b strings.Builder
	w := bufio.NewWriter(&b)
	p99Repetitions(w, d)
	w.Flush()
	out := b.String()
	for _, want := range []string{
		"| repetition | direct | nodemesh | haproxy | nginx |",
		"| 2 | 110 | 200 | 200 | — |",
		// Repetition 2 is a tie and does not count.
		"- **nodemesh proxy**: p99 above HAProxy's in 1 of 2 repetitions (two-sided sign test p = 1.00).",
		"- nginx (worker_processes 1): p99 above HAProxy's in 2 of 2 repetitions (two-sided sign test p = 0.50).",
		"- **nodemesh proxy**: 12 (11–14) Go collections during each latency run, median (min–max).",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestIdleTable(t *testing.T) {
	d := data{
		"idle-nodemesh": {"warm_conns": {1: 500, 2: 500}, "conns": {1: 2000, 2: 2000}, "rss_warm_mib": {1: 9, 2: 10}, "rss_idle_mib": {1: 25, 2: 27}, "kib_per_conn": {1: 8, 2: 9}},
		"idle-haproxy":  {"warm_conns": {1: 500, 2: 500}, "conns": {1: 2000, 2: 2000}, "rss_warm_mib": {1: 15, 2: 15}, "rss_idle_mib": {1: 16, 2: 16}, "kib_per_conn": {1: 0.5, 2: 0.6}},
	}
	var b strings.Builder
	w := bufio.NewWriter(&b)
	idleTable(w, d)
	w.Flush()
	for _, want := range []string{
		"## Idle keep-alive clients: 500, then 2000 more, each idle after one request",
		"| proxy | RSS with 500, MiB | RSS with 2500, MiB | KiB per further idle connection | vs HAProxy |",
		"| **nodemesh proxy** | 9.5 (9.0–10.0) | 26.0 (25.0–27.0) | 8.5 (8.0–9.0) | 15.5 (15.0–16.0) |",
		"| HAProxy (nbthread 1) | 15.0 (15.0–15.0) | 16.0 (16.0–16.0) | 0.6 (0.5–0.6) | — |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "nginx") {
		t.Errorf("a configuration that did not run is listed:\n%s", b.String())
	}
	b.Reset()
	idleTable(w, data{})
	w.Flush()
	if b.String() != "" {
		t.Errorf("printed without idle runs: %q", b.String())
	}
}
