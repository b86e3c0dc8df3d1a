// Command report turns the raw measurements of run.sh into the markdown
// result table: medians with min–max over the interleaved repetitions,
// ratios against the backend called directly (and against HAProxy for p99
// and TCP), every repetition's p99 with a sign test against HAProxy's, and
// a check against the targets of issue 3.
//
// Input: a TSV file of "config<TAB>rep<TAB>metric<TAB>value" lines. Ratios
// and added latencies are computed per repetition (each pairs runs taken
// minutes apart) and then summarised.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// data maps config -> metric -> rep -> value.
type data map[string]map[string]map[int]float64

func main() {
	in := flag.String("in", "", "raw TSV from run.sh")
	meta := flag.String("meta", "", "file of header lines to print first (date, load, versions)")
	flag.Parse()
	d, err := load(*in)
	if err != nil {
		log.Fatal(err)
	}
	if *meta != "" {
		b, err := os.ReadFile(*meta)
		if err != nil {
			log.Fatal(err)
		}
		os.Stdout.Write(b)
		fmt.Println()
	}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	httpTable(w, d)
	p99Repetitions(w, d)
	tcpTable(w, d)
	largeTable(w, d)
	idleTable(w, d)
	targets(w, d)
}

func load(path string) (data, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := data{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), "\t")
		if len(parts) != 4 {
			continue
		}
		rep, err1 := strconv.Atoi(parts[1])
		v, err2 := strconv.ParseFloat(parts[3], 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad line %q", sc.Text())
		}
		if d[parts[0]] == nil {
			d[parts[0]] = map[string]map[int]float64{}
		}
		if d[parts[0]][parts[2]] == nil {
			d[parts[0]][parts[2]] = map[int]float64{}
		}
		d[parts[0]][parts[2]][rep] = v
	}
	return d, sc.Err()
}

// stat is a median with its min and max; ok is false when there was no
// sample.
type stat struct {
	med, lo, hi float64
	ok          bool
}

func summarise(vs []float64) stat {
	if len(vs) == 0 {
		return stat{}
	}
	slices.Sort(vs)
	med := vs[len(vs)/2]
	if len(vs)%2 == 0 {
		med = (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
	}
	return stat{med: med, lo: vs[0], hi: vs[len(vs)-1], ok: true}
}

// values returns every repetition's value of config/metric.
func (d data) values(config, metric string) []float64 {
	var vs []float64
	for _, v := range d[config][metric] {
		vs = append(vs, v)
	}
	return vs
}

func (d data) stat(config, metric string) stat { return summarise(d.values(config, metric)) }

// paired combines a's and b's value of the same repetition with f.
func (d data) paired(a, b, metric string, f func(x, y float64) float64) stat {
	var vs []float64
	for rep, x := range d[a][metric] {
		if y, ok := d[b][metric][rep]; ok {
			vs = append(vs, f(x, y))
		}
	}
	return summarise(vs)
}

func ratio(x, y float64) float64 { return x / y }
func minus(x, y float64) float64 { return x - y }

// format prints "med (lo–hi)" with the given precision.
func (s stat) format(prec int) string {
	if !s.ok {
		return "—"
	}
	f := "%." + strconv.Itoa(prec) + "f"
	return fmt.Sprintf(f+" ("+f+"–"+f+")", s.med, s.lo, s.hi)
}

// httpConfigs is the display order of the HTTP configurations.
var httpConfigs = []struct{ key, name string }{
	{"direct", "direct (the limit)"},
	{"nodemesh", "**nodemesh proxy**"},
	{"nodemesh-nogc", "nodemesh proxy, Go collector off (diagnostic)"},
	{"nodemesh-gc64", "nodemesh proxy, 64 MiB GC headroom (diagnostic)"},
	{"haproxy", "HAProxy (nbthread 1)"},
	{"nginx", "nginx (worker_processes 1)"},
	{"httputil", "Go httputil.ReverseProxy"},
	{"httputil-pool", "Go httputil + sync.Pool BufferPool"},
	{"oxy-pool", "oxy v2 forward + roundrobin + BufferPool"},
}

func httpTable(w *bufio.Writer, d data) {
	fmt.Fprintln(w, "## HTTP: throughput (wrk -t1 -c50), latency at 2,000 req/s, memory and CPU")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Median (min–max) of the repetitions. Added latency is the proxy's percentile minus direct's in the same repetition.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Other work on core 0 is the node core's busy time during the measured wrk run that was neither the backend's nor the proxy's: other tenants of the machine, and kernel work (loopback softirqs) not charged to a process.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| proxy | max RPS | ratio vs direct | p50 µs | p99 µs | p99.9 µs | added p50 µs | added p99 µs | added p99 vs HAProxy's | RSS MiB | CPU ms / 1k req | other work on core 0 % |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	haAdded := d.paired("haproxy", "direct", "p99_us", minus)
	for _, c := range httpConfigs {
		if d[c.key] == nil {
			continue
		}
		vsHA := "—"
		// A ratio to HAProxy's added p99 means something only when
		// HAProxy added latency at all; on a disturbed run it may not.
		if c.key != "direct" && c.key != "haproxy" && haAdded.ok && haAdded.med > 0 {
			if added := d.paired(c.key, "direct", "p99_us", minus); added.ok {
				vsHA = fmt.Sprintf("%.2f", added.med/haAdded.med)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c.name,
			d.stat(c.key, "rps").format(0),
			d.paired(c.key, "direct", "rps", ratio).format(2),
			d.stat(c.key, "p50_us").format(0),
			d.stat(c.key, "p99_us").format(0),
			d.stat(c.key, "p999_us").format(0),
			d.paired(c.key, "direct", "p50_us", minus).format(0),
			d.paired(c.key, "direct", "p99_us", minus).format(0),
			vsHA,
			d.stat(c.key, "rss_mib").format(1),
			d.stat(c.key, "cpu_ms_per_1k").format(1),
			d.stat(c.key, "other_core0_pct").format(0))
	}
	fmt.Fprintln(w)
	for _, c := range httpConfigs {
		if n := len(d.values(c.key, "latency_failed")); n > 0 {
			fmt.Fprintf(w, "- %s: %d latency run(s) had failed or unsent requests and give no latency figure.\n", c.name, n)
		}
		if n := len(d.values(c.key, "wrk_errors")); n > 0 {
			fmt.Fprintf(w, "- %s: wrk saw socket errors or non-2xx responses in %d run(s); see the run's logs.\n", c.name, n)
		}
	}
	fmt.Fprintln(w)
}

// p99Repetitions prints every repetition's p99 at 2,000 req/s, and for
// each proxy the repetitions in which its p99 was above HAProxy's, with a
// two-sided sign test. A ratio of medians of a few added p99s swings by
// half its value between runs here; the per-repetition view shows whether
// a difference was systematic or one repetition's.
func p99Repetitions(w *bufio.Writer, d data) {
	var cols []string
	var reps []int
	for _, c := range httpConfigs {
		for rep := range d[c.key]["p99_us"] {
			if !slices.Contains(reps, rep) {
				reps = append(reps, rep)
			}
		}
		if len(d[c.key]["p99_us"]) > 0 {
			cols = append(cols, c.key)
		}
	}
	if len(cols) < 2 {
		return
	}
	slices.Sort(reps)
	fmt.Fprintln(w, "## p99 at 2,000 req/s by repetition, µs")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| repetition | "+strings.Join(cols, " | ")+" |")
	fmt.Fprintln(w, "|---:"+strings.Repeat("|---:", len(cols))+"|")
	for _, rep := range reps {
		fmt.Fprintf(w, "| %d |", rep)
		for _, c := range cols {
			if v, ok := d[c]["p99_us"][rep]; ok {
				fmt.Fprintf(w, " %.0f |", v)
			} else {
				fmt.Fprint(w, " — |")
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	if d["haproxy"] != nil {
		for _, c := range httpConfigs {
			if c.key == "haproxy" || c.key == "direct" || len(d[c.key]["p99_us"]) == 0 {
				continue
			}
			above, n := signs(d, c.key, "haproxy", "p99_us")
			if n == 0 {
				continue
			}
			fmt.Fprintf(w, "- %s: p99 above HAProxy's in %d of %d repetitions (two-sided sign test p = %.2f).\n", c.name, above, n, signTest(above, n))
		}
		fmt.Fprintln(w)
	}
	// Each collection's mark phase holds the shared core while the
	// backend waits (results/proxy-2026-12-07-p99-gc64.md), so the count
	// per latency run goes with its p99.
	var gc bool
	for _, c := range httpConfigs {
		if s := d.stat(c.key, "gc_cycles_latency"); s.ok {
			fmt.Fprintf(w, "- %s: %s Go collections during each latency run, median (min–max).\n", c.name, s.format(0))
			gc = true
		}
	}
	if gc {
		fmt.Fprintln(w)
	}
}

// signs counts the repetitions in which a's metric was above b's, out of
// those where both were measured and differ.
func signs(d data, a, b, metric string) (above, n int) {
	for rep, x := range d[a][metric] {
		y, ok := d[b][metric][rep]
		if !ok || x == y {
			continue
		}
		n++
		if x > y {
			above++
		}
	}
	return above, n
}

// signTest is the two-sided p-value of k successes in n fair coin tosses:
// twice the probability of a count at least as far from n/2, at most 1.
// A binomial sum over at most a few dozen repetitions; a statistics
// library (gonum's distuv) would add a dependency for these few lines.
func signTest(k, n int) float64 {
	if n == 0 {
		return 1
	}
	far := max(k, n-k)
	tail := 0.0
	for i := far; i <= n; i++ {
		tail += binom(n, i)
	}
	return min(1, 2*tail/math.Pow(2, float64(n)))
}

func binom(n, k int) float64 {
	c := 1.0
	for i := 1; i <= k; i++ {
		c = c * float64(n-k+i) / float64(i)
	}
	return c
}

func tcpTable(w *bufio.Writer, d data) {
	if d["tcp-direct"] == nil {
		return
	}
	fmt.Fprintln(w, "## TCP mode: 1 MiB per connection")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| proxy | MiB/s | connections/s | ratio vs direct | ratio vs HAProxy | CPU ms / connection |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	for _, c := range []struct{ key, name string }{
		{"tcp-direct", "direct"}, {"tcp-nodemesh", "**nodemesh proxy**"}, {"tcp-haproxy", "HAProxy mode tcp"},
		{"tcp-haproxy-splice", "HAProxy mode tcp, option splice-auto"},
	} {
		if d[c.key] == nil {
			continue
		}
		vsHA := "—"
		if c.key == "tcp-nodemesh" {
			vsHA = d.paired(c.key, "tcp-haproxy", "mib_per_sec", ratio).format(2)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", c.name,
			d.stat(c.key, "mib_per_sec").format(0),
			d.stat(c.key, "conns_per_sec").format(0),
			d.paired(c.key, "tcp-direct", "mib_per_sec", ratio).format(2),
			vsHA,
			d.stat(c.key, "cpu_ms_per_conn").format(2))
	}
	fmt.Fprintln(w)
}

func largeTable(w *bufio.Writer, d data) {
	if d["large"] == nil {
		return
	}
	fmt.Fprintln(w, "## Large table: 1,000 HTTP services, 10,000 endpoints")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| measure | value |")
	fmt.Fprintln(w, "|---|---:|")
	fmt.Fprintf(w, "| proxy RSS with the large table loaded, idle, MiB | %s |\n", d.stat("large", "rss_idle_mib").format(1))
	fmt.Fprintf(w, "| proxy RSS with the large table loaded, after a throughput run, MiB | %s |\n", d.stat("large", "rss_mib").format(1))
	fmt.Fprintf(w, "| proxy RSS 1 s after the last of the reloads below, MiB | %s |\n", d.stat("large", "rss_after_reload_mib").format(1))
	fmt.Fprintf(w, "| reload in which every endpoint changed: decoding the file (nodemesh_proxy_table_decode_duration_seconds), ms | %s |\n", d.stat("large", "decode_ms").format(1))
	fmt.Fprintf(w, "| the same reload: validate + apply (nodemesh_proxy_reload_duration_seconds), ms | %s |\n", d.stat("large", "reload_ms").format(1))
	fmt.Fprintf(w, "| the same reload, decode + validate + apply, ms | %s |\n", d.stat("large", "reload_total_ms").format(1))
	fmt.Fprintln(w)
}

// idleConfigs is the display order of the idle-connection runs.
var idleConfigs = []struct{ key, name string }{
	{"idle-nodemesh", "**nodemesh proxy**"},
	{"idle-haproxy", "HAProxy (nbthread 1)"},
	{"idle-nginx", "nginx (worker_processes 1)"},
	{"idle-oxy-pool", "oxy v2 forward + roundrobin + BufferPool (net/http server)"},
}

// idleTable prints what idle keep-alive client connections cost each
// proxy: RSS with a first group of them open, with a second group more,
// and the difference per connection of the second group.
func idleTable(w *bufio.Writer, d data) {
	warm, conns := d.stat("idle-nodemesh", "warm_conns"), d.stat("idle-nodemesh", "conns")
	if !warm.ok || !conns.ok {
		return
	}
	fmt.Fprintf(w, "## Idle keep-alive clients: %.0f, then %.0f more, each idle after one request\n", warm.med, conns.med)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| proxy | RSS with %.0f, MiB | RSS with %.0f, MiB | KiB per further idle connection | vs HAProxy |\n", warm.med, warm.med+conns.med)
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for _, c := range idleConfigs {
		if d[c.key] == nil {
			continue
		}
		vsHA := "—"
		if c.key != "idle-haproxy" {
			vsHA = d.paired(c.key, "idle-haproxy", "kib_per_conn", ratio).format(1)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", c.name,
			d.stat(c.key, "rss_warm_mib").format(1),
			d.stat(c.key, "rss_idle_mib").format(1),
			d.stat(c.key, "kib_per_conn").format(1),
			vsHA)
	}
	fmt.Fprintln(w)
}

// cpuTargetVsHAProxy is issue 3's CPU target, 33 ms per 1,000 requests,
// over HAProxy's 9.8 ms on the anchors' machine (shared/notes/anchors.md).
const cpuTargetVsHAProxy = 33 / 9.8

// targets compares the nodemesh figures with issue 3's targets.
func targets(w *bufio.Writer, d data) {
	if d["nodemesh"] == nil {
		return
	}
	fmt.Fprintln(w, "## Against the targets of issue 3 (medians)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | measured | met |")
	fmt.Fprintln(w, "|---|---:|:---:|")
	row := func(name string, s stat, prec int, ok func(float64) bool) {
		met := "—"
		if s.ok {
			met = map[bool]string{true: "yes", false: "**no**"}[ok(s.med)]
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", name, s.format(prec), met)
	}
	row("throughput ≥ 0.21 of direct", d.paired("nodemesh", "direct", "rps", ratio), 2, func(v float64) bool { return v >= 0.21 })
	row("throughput ≥ 1/1.1 of the pooled oxy forwarder's", d.paired("nodemesh", "oxy-pool", "rps", ratio), 2, func(v float64) bool { return v >= 1/1.1 })
	row("CPU per request ≤ 1.1× the pooled oxy forwarder's", d.paired("nodemesh", "oxy-pool", "cpu_ms_per_1k", ratio), 2, func(v float64) bool { return v <= 1.1 })
	// Issue 3 sets 33 ms per 1,000 requests from the anchors' machine,
	// where HAProxy used 9.8 ms; absolute CPU times move with the machine
	// (HAProxy's own figure varies 2–3× between days here), so the target
	// is judged as its ratio to HAProxy's in the same run. The absolute
	// figure is printed for reference.
	row(fmt.Sprintf("CPU per request ≤ %.2f× HAProxy's (33 ms / 1k against its anchor 9.8 ms)", cpuTargetVsHAProxy), d.paired("nodemesh", "haproxy", "cpu_ms_per_1k", ratio), 2, func(v float64) bool { return v <= cpuTargetVsHAProxy })
	row("CPU ms per 1,000 requests, this machine today (the 33 ms target was set on the anchors' machine)", d.stat("nodemesh", "cpu_ms_per_1k"), 1, func(v float64) bool { return v <= 33 })
	haAdded := d.paired("haproxy", "direct", "p99_us", minus)
	nmAdded := d.paired("nodemesh", "direct", "p99_us", minus)
	if haAdded.ok && nmAdded.ok && haAdded.med > 0 {
		r := summarise([]float64{nmAdded.med / haAdded.med})
		row("added p99 ≤ 1.5× HAProxy's", r, 2, func(v float64) bool { return v <= 1.5 })
	}
	row("RSS ≤ 25 MiB, small table (after a throughput run)", d.stat("nodemesh", "rss_mib"), 1, func(v float64) bool { return v <= 25 })
	row("RSS ≤ 50 MiB, 1,000 services / 10,000 endpoints (after a throughput run)", d.stat("large", "rss_mib"), 1, func(v float64) bool { return v <= 50 })
	// Every reload of every repetition is a sample; the figure includes
	// decoding the table, which a proxy must do before it can apply it.
	row("reload of the large table < 50 ms (decode + validate + apply)", d.stat("large", "reload_total_ms"), 1, func(v float64) bool { return v < 50 })
	row("TCP 1 MiB/conn throughput ≥ 0.8× HAProxy mode tcp", d.paired("tcp-nodemesh", "tcp-haproxy", "mib_per_sec", ratio), 2, func(v float64) bool { return v >= 0.8 })
	if d["tcp-haproxy-splice"] != nil {
		row("the same against HAProxy with option splice-auto", d.paired("tcp-nodemesh", "tcp-haproxy-splice", "mib_per_sec", ratio), 2, func(v float64) bool { return v >= 0.8 })
	}
	fmt.Fprintln(w)
}
