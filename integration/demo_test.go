//go:build demo

package integration_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	splitclient "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/split/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nodemesh/nodemesh/integration/harness"
)

// TestDemo is `make demo`: the mesh on a real control plane in a private
// network namespace, an app in two versions behind an 80/20 TrafficSplit,
// and steady traffic through app.demo.mesh shown live until Ctrl-C (or
// NODEMESH_DEMO_DURATION, default 30m). It is built only with -tags demo.
func TestDemo(t *testing.T) {
	ctx, stop := signal.NotifyContext(t.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	limit := 30 * time.Minute
	if v := os.Getenv("NODEMESH_DEMO_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("NODEMESH_DEMO_DURATION: %v", err)
		}
		limit = d
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()

	step := stepper(6)
	step("starting etcd, kube-apiserver and kube-controller-manager")
	c := harness.Start(t, harness.WithNodeNetworks())
	installSMICRDs(t, c)
	createNamespaces(t, c, "nodemesh", "demo")
	nodes := []string{"node-1", "node-2"}
	step("adding nodes %s, each with its own network namespace and kube-proxy (nftables)", strings.Join(nodes, ", "))
	for _, n := range nodes {
		c.AddNode(t, n)
	}
	for _, n := range nodes {
		c.StartKubeProxy(t, n)
	}

	step("deploying app v1 (2 pods) and v2 (1 pod), with an 80/20 TrafficSplit")
	pods := []struct{ name, version, node string }{
		{"app-v1-a", "v1", "node-1"}, {"app-v1-b", "v1", "node-2"}, {"app-v2-a", "v2", "node-2"},
	}
	for _, p := range pods {
		c.StartPod(t, harness.PodSpec{Namespace: "demo", Name: p.name, Node: p.node, Labels: map[string]string{"app": "app", "version": p.version}})
	}
	for _, s := range []struct {
		name     string
		selector map[string]string
	}{
		{"app", map[string]string{"app": "app"}},
		{"app-v1", map[string]string{"app": "app", "version": "v1"}},
		{"app-v2", map[string]string{"app": "app", "version": "v2"}},
	} {
		createService(t, c, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: s.name},
			Spec: corev1.ServiceSpec{Selector: s.selector, Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
			}},
		})
	}
	splits, err := splitclient.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := splits.SplitV1alpha4().TrafficSplits("demo").Create(ctx, &splitv1alpha4.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "app"},
		Spec: splitv1alpha4.TrafficSplitSpec{Service: "app", Backends: []splitv1alpha4.TrafficSplitBackend{
			{Service: "app-v1", Weight: 80}, {Service: "app-v2", Weight: 20},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	step("starting CoreDNS, patched by nodemesh for the .mesh domain")
	startCoreDNS(t, c, "node-1")
	step("starting the nodemesh controller and one nodemesh proxy per node")
	port := freeLoopbackPort(t)
	startFixedController(t, c, port)
	controllerURL := fmt.Sprintf("http://%s", netip.AddrPortFrom(c.GatewayIP(), uint16(port)))
	for _, n := range nodes {
		startMeshProxy(t, c, n, controllerURL).WaitReady(t, settle)
	}
	client := c.StartPod(t, harness.PodSpec{Namespace: "demo", Name: "load", Node: "node-1", Labels: map[string]string{"app": "load"}})
	mesh := &meshNode{Node: c.Node("node-1"), client: client, http: newPodMeshClient(client)}
	waitUntil(t, settle, "app.demo.mesh to answer", func() bool {
		_, err := mesh.meshGet(ctx, "http://app.demo.mesh/")
		return err == nil
	})

	step("sending traffic to http://app.demo.mesh/ from pod demo/load on node-1")
	kubectl := writeDemoKubectl(t, c)
	hint := fmt.Sprintf("Change the split (it shows below within a second):\n  %s -n demo patch trafficsplit app --type=merge \\\n    -p '{\"spec\":{\"backends\":[{\"service\":\"app-v1\",\"weight\":50},{\"service\":\"app-v2\",\"weight\":50}]}}'\nor edit it: %s -n demo edit trafficsplit app\nCtrl-C stops everything and removes the namespace.", kubectl, kubectl)
	total := runDemoLoad(ctx, mesh, splits, hint)
	fmt.Println("\nstopping: the control plane, proxies and pods, then the network namespace")
	// A demo that showed only errors must not end as a success: CI runs it
	// briefly (NODEMESH_DEMO_DURATION) to prove `make demo` works.
	ok := total["v1"] + total["v2"]
	if ok == 0 || total["error"]*20 > ok+total["error"] {
		t.Errorf("demo traffic: %v; want answers from v1 and v2 and under 5%% errors", total)
	}
}

// stepper prints numbered progress lines.
func stepper(total int) func(format string, args ...any) {
	n := 0
	return func(format string, args ...any) {
		n++
		fmt.Printf("[%d/%d] %s\n", n, total, fmt.Sprintf(format, args...))
	}
}

// writeDemoKubectl writes a kubectl wrapper that enters the demo's private
// network namespace (where the apiserver listens) and uses its kubeconfig.
func writeDemoKubectl(t *testing.T, c *harness.Cluster) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "nodemesh-demo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	b, err := os.ReadFile(c.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kubeconfig, b, 0o600); err != nil {
		t.Fatal(err)
	}
	enter := "nsenter -t " + strconv.Itoa(os.Getpid()) + " -n"
	// harness.Main runs this test in a child of the outer test process; when
	// it also made a user namespace (no root), kubectl must enter that too.
	if own, _ := os.Readlink("/proc/self/ns/user"); own != parentUserNS() {
		enter = "nsenter -t " + strconv.Itoa(os.Getpid()) + " -U -n --preserve-credentials"
	}
	path := filepath.Join(dir, "kubectl")
	script := fmt.Sprintf("#!/bin/sh\n# Runs kubectl inside the nodemesh demo's private network namespace.\nexec %s %s --kubeconfig %s \"$@\"\n", enter, filepath.Join(c.ToolsDir, "kubectl"), kubeconfig)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return path
}

func parentUserNS() string {
	s, _ := os.Readlink("/proc/" + strconv.Itoa(os.Getppid()) + "/ns/user")
	return s
}

// runDemoLoad sends requests at a steady rate from the load pod and redraws
// a table of per-version counts every second until ctx ends. It returns the
// counts by version, failures under "error".
func runDemoLoad(ctx context.Context, mesh *meshNode, splits splitclient.Interface, hint string) (total map[string]int) {
	const workers, perWorkerRate = 4, 25 // 100 requests per second in all
	var mu sync.Mutex
	var lastErr string
	total = map[string]int{}
	window := map[string]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second / perWorkerRate)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				who, err := mesh.meshGet(rctx, "http://app.demo.mesh/")
				cancel()
				key := "error"
				if err == nil {
					key = versionOf(who.Pod)
				} else if ctx.Err() != nil {
					return
				}
				mu.Lock()
				if err != nil {
					lastErr = time.Now().Format(time.TimeOnly) + " " + err.Error()
				}
				total[key]++
				window[key]++
				mu.Unlock()
			}
		}()
	}
	tty := isTerminal()
	redraw := time.NewTicker(time.Second)
	defer redraw.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return total
		case <-redraw.C:
		}
		weights := currentWeights(ctx, splits)
		mu.Lock()
		snapshot, rates, failure := copyCounts(total), copyCounts(window), lastErr
		clear(window)
		mu.Unlock()
		var b strings.Builder
		if tty {
			b.WriteString("\x1b[H\x1b[2J")
		}
		fmt.Fprintf(&b, "nodemesh demo — http://app.demo.mesh/  (%s)\n\n", time.Now().Format(time.TimeOnly))
		fmt.Fprintf(&b, "%-8s %8s %10s %9s %12s\n", "VERSION", "WEIGHT", "REQ/S", "SHARE/S", "TOTAL")
		sum := 0
		for _, v := range rates {
			sum += v
		}
		for _, k := range sortedKeys(snapshot) {
			share := 0.0
			if sum > 0 {
				share = 100 * float64(rates[k]) / float64(sum)
			}
			fmt.Fprintf(&b, "%-8s %8s %10d %8.1f%% %12d\n", k, weights[k], rates[k], share, snapshot[k])
		}
		if failure != "" {
			fmt.Fprintf(&b, "\nlast error: %s\n", failure)
		}
		fmt.Fprintf(&b, "\n%s\n", hint)
		fmt.Print(b.String())
	}
}

// versionOf maps a pod name (app-v1-a) to its version (v1).
func versionOf(pod string) string {
	parts := strings.Split(pod, "-")
	if len(parts) >= 2 {
		return parts[1]
	}
	return pod
}

// currentWeights reads the split's weights by version, for the table.
func currentWeights(ctx context.Context, splits splitclient.Interface) map[string]string {
	out := map[string]string{}
	ts, err := splits.SplitV1alpha4().TrafficSplits("demo").Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		return out
	}
	for _, b := range ts.Spec.Backends {
		out[strings.TrimPrefix(b.Service, "app-")] = strconv.Itoa(b.Weight)
	}
	return out
}

func copyCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func isTerminal() bool {
	fi, err := os.Stdout.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
