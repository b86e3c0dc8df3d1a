package controllerbench

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/integration/harness"
	"github.com/nodemesh/nodemesh/smi"
)

// installCRDs creates the SMI CRDs (smi/crds) and waits until established.
func installCRDs(t *testing.T, c *harness.Cluster) {
	t.Helper()
	crds, err := smi.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	ext := apiextensionsclient.NewForConfigOrDie(c.RESTConfig())
	for _, crd := range crds {
		if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(t.Context(), crd, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for _, crd := range crds {
		for {
			got, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(t.Context(), crd.Name, metav1.GetOptions{})
			if err == nil && established(got) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("CRD %s not established", crd.Name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

// traefik holds Traefik Mesh v1.4's figures from shared/notes/anchors.md,
// measured on the same apiserver with the same shape.
var traefik = map[int]map[string]string{
	100:  {"ready": "0.42 s", "shadows": "19.5 s", "late": "14 s", "edit": "12 / 15 ms", "new": "37 ms", "rss": "46 MiB", "cpu": "0.5 s", "restart": "121 UPDATEs in 24 s", "size": "53 KB"},
	1000: {"ready": "0.83 s", "shadows": "199 s", "late": "193 s", "edit": "43 / 72 ms", "new": "79 ms", "rss": "121 MiB", "cpu": "27 s", "restart": "1,021 UPDATEs in 203 s", "size": "526 KB"},
	3000: {"ready": "1.53 s", "shadows": "600 s", "late": "593 s", "edit": "98 / 126 ms", "new": "180 ms", "rss": "286 MiB", "cpu": "240 s", "restart": "3,021 UPDATEs in 604 s", "size": "1.6 MB"},
}

// targets are issue 4's targets, where it sets one.
var targets = map[int]map[string]string{
	1000: {"shadows": "< 10 s", "edit": "p95 ≤ 20 ms", "proxy": "p99 ≤ 100 ms", "newShadow": "p95 ≤ 1 s", "late": "≤ 1 s", "rss": "≤ 60 MiB", "restart": "0"},
	3000: {"shadows": "< 30 s", "edit": "p95 ≤ 50 ms", "newShadow": "p95 ≤ 1 s", "late": "≤ 1 s", "rss": "≤ 150 MiB", "restart": "0"},
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
func sec(d time.Duration) string {
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// render writes the results as markdown, with Traefik Mesh beside them.
func render(rs []result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Controller benchmark, %s\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "Produced by `integration/bench/controller/run.sh` on the real harness apiserver (kube-apiserver v1.37, etcd 3.6) on a %d-core machine. ", runtime.NumCPU())
	b.WriteString("Shape as in shared/notes/anchors.md: N selector-less Services of 1 HTTP port, each with 5 Running+Ready Pods and one EndpointSlice listing them ")
	b.WriteString("(written by the benchmark, so the EndpointSlice controller plays no part), and an 80/20 TrafficSplit on every tenth. ")
	b.WriteString("`nodemesh controller` runs as its own process with its defaults (QPS 200, burst 400, 8 shadow writers, leader election on). ")
	fmt.Fprintf(&b, "%d in-process distribution clients stand in for node proxies (each reads every version as a proxy does: the whole table first, then deltas; docs/distribution-protocol.md). Traefik Mesh's figures are from the anchor, same apiserver and shape.\n\n", *reader)
	b.WriteString("| metric | N | nodemesh | target | Traefik Mesh |\n|---|---:|---:|---:|---:|\n")
	row := func(name, key string, n int, v string) {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s |\n", name, n, v, or(targets[n][key], "—"), or(traefik[n][key], "—"))
	}
	for _, r := range rs {
		row("start → ready (table served)", "ready", r.N, sec(r.Ready))
		row("start → all shadow services exist", "shadows", r.N, fmt.Sprintf("%s (%d shadows)", sec(r.AllShadows), r.Shadows))
		row("Service created during the backlog → its shadow exists", "late", r.N, fmt.Sprintf("%s (%d shadows still to write)", ms(r.LateShadow), r.LateBacklog))
		row(fmt.Sprintf("%d Services created in turn during the backlog → routable incl. their shadow, p50 / p95 / max", lateServices), "newShadow", r.N,
			fmt.Sprintf("%s / %s / %s (%d, then %d shadows still to write)", ms(r.LateP50), ms(r.LateP95), ms(r.LateMax), r.LateBacklog, r.LateBacklogLast))
		row("split weight edit → in served table, p50 / p95", "edit", r.N, fmt.Sprintf("%s / %s (max %s)%s", ms(r.EditP50), ms(r.EditP95), ms(r.EditMax), misses(r.EditMisses)))
		row("controller during the edits: rebuilds, mean rebuild, CPU per edit, GC cycles", "", r.N, fmt.Sprintf("%.0f, %s, %s, %.0f", r.EditBuilds, ms(r.EditBuildMean), ms(r.EditCPU), r.EditGCs))
		row("same edit applied on every connected proxy, p50 / p99", "proxy", r.N, fmt.Sprintf("%s / %s%s", ms(r.ProxyP50), ms(r.ProxyP99), misses(r.ProxyMisses)))
		row("new Service + endpoints → in served table, p50 / p95", "new", r.N, fmt.Sprintf("%s / %s", ms(r.NewP50), ms(r.NewP95)))
		row("new Service + endpoints → routable incl. its shadow (ClusterIP in the route's hosts), p50 / p95", "newShadow", r.N, fmt.Sprintf("%s / %s", ms(r.ShadowP50), ms(r.ShadowP95)))
		row("controller RSS, steady", "rss", r.N, fmt.Sprintf("%.1f MiB (Go heap in use %.1f MiB)", r.RSS, r.HeapInuse))
		row("controller CPU, start → steady", "cpu", r.N, sec(r.CPUToSteady))
		row("restart with nothing changed: shadow writes", "restart", r.N, fmt.Sprintf("%.0f writes, %d resourceVersions changed; settled in %s", r.RestartWrites, r.RestartChanged, sec(r.RestartSettled)))
		row("served table size", "size", r.N, fmt.Sprintf("%d KB", r.TableBytes/1000))
		row("machine load average (1 min), start / end of this size", "", r.N, r.LoadBefore+" / "+r.LoadAfter)
	}
	b.WriteString("\nNotes:\n")
	b.WriteString("- The served table lists every pod IP (for source identity), so it is larger than Traefik Mesh's config at the same N.\n")
	b.WriteString("- \"In served table\" is when the benchmark's long poll of /api/table received the new version's headers (that poll, too, reads deltas against the version it holds, as a proxy does); \"applied on every proxy\" is when the last of the distribution clients had decoded it.\n")
	b.WriteString("- Populating the cluster is not timed in any figure; the controller starts after it.\n")
	b.WriteString("- The machine is shared by the apiserver, etcd, the controller and the benchmark itself (its 10 distribution clients read every version in this process), and possibly by other work (see the load average rows; 2 cores), so wall-clock figures include that contention; CPU seconds and write counts do not depend on it.\n")
	b.WriteString("- \"Controller during the edits\" reads the controller's own build_duration_seconds histogram (snapshot, both builds and publish, wall time) and its process CPU over the edit phase.\n")
	return b.String()
}

// misses notes edits not seen within editTimeout (counted as that long).
func misses(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; %d not seen within %s, counted as %s", n, editTimeout, editTimeout)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
