package controllerbench

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/nodemesh/nodemesh/pkg/distribution"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// controllerProc is `nodemesh controller` run as its own process, so its
// RSS and CPU are its own.
type controllerProc struct {
	cmd     *exec.Cmd
	url     string
	started time.Time
	exited  chan struct{}
}

func startControllerProc(t *testing.T, bin, kubeconfig string, apiPort int, logDir, name string) *controllerProc {
	t.Helper()
	logFile, err := os.Create(filepath.Join(logDir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"controller", "--kubeconfig=" + kubeconfig, fmt.Sprintf("--api-port=%d", apiPort)}, controllerArgs()...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &controllerProc{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", apiPort), exited: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); _ = logFile.Close(); close(p.exited) }()
	t.Cleanup(p.stop)
	return p
}

// stop sends SIGTERM (the controller releases its lease) and waits.
func (p *controllerProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// rssMiB is VmRSS.
func (p *controllerProc) rssMiB() float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// cpu is utime+stime so far.
func (p *controllerProc) cpu() time.Duration {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // CLK_TCK is 100 on Linux
}

// ready polls /ready until it answers 200 and returns when it did.
func (p *controllerProc) ready(t *testing.T, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get(p.url + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Now()
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("controller not ready within %s", timeout)
	return time.Time{}
}

// readiness reads /api/status/readiness.
func (p *controllerProc) readiness() (leading bool, backlog int) {
	var r struct {
		Leader        struct{ Leading bool }
		ShadowBacklog int
	}
	resp, err := http.Get(p.url + "/api/status/readiness")
	if err != nil {
		return false, -1
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&r)
	return r.Leader.Leading, r.ShadowBacklog
}

// metric reads one sample from /metrics.
func (p *controllerProc) metric(name string) float64 {
	resp, err := http.Get(p.url + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// shadowWatch records when each shadow Service first appears, from an
// informer of its own on the mesh namespace.
type shadowWatch struct {
	mu    sync.Mutex
	seen  map[string]time.Time
	order []time.Time
	wake  chan struct{}
}

func watchShadows(ctx context.Context, kube kubernetes.Interface) *shadowWatch {
	w := &shadowWatch{seen: map[string]time.Time{}, wake: make(chan struct{}, 1)}
	f := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace("nodemesh"))
	inf := f.Core().V1().Services().Informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		s := obj.(*corev1.Service)
		w.mu.Lock()
		if _, ok := w.seen[s.Name]; !ok {
			now := time.Now()
			w.seen[s.Name] = now
			w.order = append(w.order, now)
		}
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}})
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	return w
}

// count returns how many shadows were seen.
func (w *shadowWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen)
}

// when returns when name was seen, waiting up to timeout.
func (w *shadowWatch) when(name string, timeout time.Duration) (time.Time, bool) {
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		at, ok := w.seen[name]
		w.mu.Unlock()
		if ok {
			return at, true
		}
		select {
		case <-w.wake:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			return time.Time{}, false
		}
	}
}

// nth returns when the n-th shadow appeared, waiting up to timeout.
func (w *shadowWatch) nth(n int, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		if len(w.order) >= n {
			at := w.order[n-1]
			w.mu.Unlock()
			return at, true
		}
		w.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	return time.Time{}, false
}

// served is one table version as the long poll delivered it.
type served struct {
	at    time.Time // when its response headers arrived
	table *table.Table
}

// servedWatch long-polls /api/table as a proxy does, the whole table first
// and then deltas against the version it holds (docs/distribution-protocol.md),
// and keeps every version. Reading whole tables would cost this process a
// decode of the whole table (about 2 MB at 3,000 services) per version, on
// the 2 cores the controller and apiserver use.
type servedWatch struct {
	mu     sync.Mutex
	tables []served
}

func watchServed(ctx context.Context, url string) *servedWatch {
	w := &servedWatch{}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}}
	go func() {
		var base *table.Table
		for ctx.Err() == nil {
			var version uint64
			if base != nil {
				version = base.Version
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s%s?version=%d&node=bench-served&wait=30s&delta=true&runs=true", url, distribution.Path, version), nil)
			resp, err := client.Do(req)
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			at := time.Now()
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				continue
			}
			var t *table.Table
			if resp.Header.Get("Content-Type") == distribution.ContentTypeDelta {
				t, err = distribution.ApplyDelta(base, body)
			} else {
				t = new(table.Table)
				err = json.Unmarshal(body, t)
			}
			if err != nil {
				base = nil // start again from the whole table
				continue
			}
			base = t
			w.mu.Lock()
			w.tables = append(w.tables, served{at: at, table: t})
			w.mu.Unlock()
		}
	}()
	return w
}

// wholeSize is the size of the served table read whole, without gzip.
func wholeSize(ctx context.Context, url string) int {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+distribution.Path+"?node=bench-size", nil)
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}}).Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	return int(n)
}

// first returns the first served table after since that satisfies ok.
func (w *servedWatch) first(since time.Time, timeout time.Duration, ok func(*table.Table) bool) (served, bool) {
	deadline := time.Now().Add(timeout)
	checked := 0
	for time.Now().Before(deadline) {
		w.mu.Lock()
		list := w.tables
		w.mu.Unlock()
		for ; checked < len(list); checked++ {
			if s := list[checked]; !s.at.Before(since) && ok(s.table) {
				w.forget(checked)
				return s, true
			}
		}
		time.Sleep(time.Millisecond)
	}
	return served{}, false
}

// forget drops the tables before index i: a decoded 3,000-service table
// is several MB, and the benchmark must not grow with every version.
func (w *servedWatch) forget(i int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tables = append([]served(nil), w.tables[i:]...)
}

// latest is the last served table.
func (w *servedWatch) latest() served {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.tables) == 0 {
		return served{}
	}
	return w.tables[len(w.tables)-1]
}

// routeWeights returns the backend weights of svc's HTTP route, by backend
// service name; nil when there is no route.
func routeWeights(t *table.Table, svc string) map[string]int32 {
	i, found := slices.BinarySearchFunc(t.HTTP, svc, func(r table.HTTPRoute, name string) int {
		return cmp.Or(strings.Compare(r.Service.Namespace, benchNS), strings.Compare(r.Service.Name, name))
	})
	if !found {
		return nil
	}
	out := map[string]int32{}
	for _, b := range t.HTTP[i].Backends {
		out[b.Service.Name] = b.Weight
	}
	return out
}

// hasIPHost reports whether svc's HTTP route lists an IP address (its
// shadow Service's ClusterIP) among its hosts.
func hasIPHost(t *table.Table, svc string) bool {
	i, found := slices.BinarySearchFunc(t.HTTP, svc, func(r table.HTTPRoute, name string) int {
		return cmp.Or(strings.Compare(r.Service.Namespace, benchNS), strings.Compare(r.Service.Name, name))
	})
	return found && slices.ContainsFunc(t.HTTP[i].Hosts, func(h string) bool { return net.ParseIP(h) != nil })
}

// shadowVersions lists the mesh namespace's Services' resourceVersions.
func shadowVersions(ctx context.Context, kube kubernetes.Interface) (map[string]string, error) {
	l, err := kube.CoreV1().Services("nodemesh").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(l.Items))
	for _, s := range l.Items {
		out[s.Name] = s.ResourceVersion
	}
	return out, nil
}

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(p/100*float64(len(s))+0.999999) - 1
	return s[max(0, min(rank, len(s)-1))]
}
