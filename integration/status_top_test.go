package integration_test

import (
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/integration/harness"
	"github.com/nodemesh/nodemesh/pkg/shadow"
	"github.com/nodemesh/nodemesh/pkg/status"
	"github.com/nodemesh/nodemesh/pkg/top"
)

// TestStatusAndTopOnRealTraffic sends real requests from a client pod
// through a real proxy to a service split 80/20, then reads `nodemesh
// status` (JSON and text) and `nodemesh top` and checks what they say
// against what was sent.
func TestStatusAndTopOnRealTraffic(t *testing.T) {
	m := startOpsMesh(t, nil)
	const sent = 600
	m.sendRequests(t, "web.shop.mesh", sent)
	where := []string{"--controller-url=" + m.ctrl.URL, "--proxy-urls=" + m.proxyAdmin, "--kubeconfig=" + m.c.Kubeconfig()}

	t.Log("status of one service, as JSON: names, shadow, endpoints, split intended and observed")
	out, stderr, code := runNodemesh(t, append([]string{"status", "-n", "shop", "web", "-o", "json"}, where...)...)
	if code != 0 {
		t.Fatalf("status: exit %d: %s%s", code, out, stderr)
	}
	var services []status.Service
	if err := json.Unmarshal([]byte(out), &services); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	if len(services) != 1 {
		t.Fatalf("status -n shop web: %d services, want 1:\n%s", len(services), out)
	}
	web := services[0]
	webShadow := shadowOf(t, m.c, "web--shop")
	if web.MeshNames[0] != "web.shop.mesh" || web.TrafficType != "http" || web.Shadow != "nodemesh/web--shop" ||
		len(web.ShadowClusterIPs) != 1 || web.ShadowClusterIPs[0] != webShadow.Spec.ClusterIP {
		t.Errorf("web: names %v type %s shadow %s %v; the shadow's ClusterIP is %s", web.MeshNames, web.TrafficType, web.Shadow, web.ShadowClusterIPs, webShadow.Spec.ClusterIP)
	}
	if len(web.Endpoints) != 1 || web.Endpoints[0].Node != "node-a" || web.Endpoints[0].Ready != 2 {
		t.Errorf("web endpoints %+v, want 2 ready on node-a", web.Endpoints)
	}
	if web.Access.Enforced {
		t.Errorf("access enforced without --acl: %+v", web.Access)
	}
	sp := web.Split
	if sp == nil || sp.Name != "canary" || !sp.Observed || len(sp.Backends) != 2 {
		t.Fatalf("split %+v", sp)
	}
	var total float64
	for _, b := range sp.Backends {
		total += b.Requests
	}
	// The startup probe sent a few requests too.
	if total < sent || total > sent+50 {
		t.Errorf("observed %v requests on the split's backends, sent %d", total, sent)
	}
	for i, want := range []struct {
		name     string
		intended float64
	}{{"web-v1", 80}, {"web-v2", 20}} {
		b := sp.Backends[i]
		// 600 draws at 20%: one standard deviation is 1.6 points.
		if b.Service != want.name || b.Intended != want.intended || math.Abs(b.Observed-want.intended) > 7 {
			t.Errorf("backend %d: %+v, want %s intended %v, observed within 7 points", i, b, want.name, want.intended)
		}
	}
	t.Logf("observed split: web-v1 %.1f%%, web-v2 %.1f%% of %v requests", sp.Backends[0].Observed, sp.Backends[1].Observed, total)

	t.Log("status as text, the service named first and the namespace after")
	text, _, code := runNodemesh(t, append([]string{"status", "web", "-n", "shop"}, where...)...)
	for _, want := range []string{"shop/web\n", "mesh names:    web.shop.mesh", "shadow:        nodemesh/web--shop " + webShadow.Spec.ClusterIP,
		"endpoints:     node-a: 2 ready", "split canary:  web-v1 weight 80 intended 80.0% observed ", "access:        not enforced"} {
		if code != 0 || !strings.Contains(text, want) {
			t.Errorf("status text (exit %d) lacks %q:\n%s", code, want, text)
		}
	}
	list, _, _ := runNodemesh(t, append([]string{"status", "-n", "shop", "-o", "json"}, where...)...)
	var all []status.Service
	if err := json.Unmarshal([]byte(list), &all); err != nil || len(all) != 3 || all[0].Name != "web" || all[2].Name != "web-v2" {
		t.Errorf("status -n shop: %v, %d services:\n%s", err, len(all), list)
	}

	t.Log("top while the client sends successes and, more rarely, 500s")
	stopOK := m.backgroundTraffic("web.shop.mesh", "/", 5*time.Millisecond, 30*time.Second)
	stopErr := m.backgroundTraffic("web.shop.mesh", "/status/500", 50*time.Millisecond, 30*time.Second)
	out, stderr, code = runNodemesh(t, "top", "--proxy-urls="+m.proxyAdmin, "--interval=2s", "--iterations=2", "--sort=rps", "-n", "shop")
	okSent, errSent := stopOK(), stopErr()
	if code != 0 {
		t.Fatalf("top: exit %d\n%s%s", code, out, stderr)
	}
	t.Logf("sent %d ok and %d failing requests during top:\n%s", okSent, errSent, out)
	frames := strings.Split(strings.TrimSpace(out), "\n\n")
	if len(frames) != 2 {
		t.Fatalf("top --iterations=2 printed %d frames", len(frames))
	}
	rows := parseTop(t, frames[1])
	if len(rows) != 2 || rows[0].source != "shop/Pod/client" || rows[0].dest != "shop/web" || rows[0].backend != "web-v1" || rows[1].backend != "web-v2" {
		t.Fatalf("top rows %+v, want client → web by web-v1 then web-v2 (sorted by rps)", rows)
	}
	for _, r := range rows {
		// 5 ms pacing gives at most 200 rps; some 500s land on each backend.
		if r.rps <= 1 || r.rps > 250 || r.success >= 100 || r.success < 50 || r.p50 == "" {
			t.Errorf("edge %+v: want 1-250 rps and a success rate under 100%%", r)
		}
	}
	if rows[0].rps < rows[1].rps {
		t.Errorf("not sorted by rps: %+v", rows)
	}

	t.Log("with a kubeconfig only: the controller through its Service, the proxy through its pod, both by the apiserver")
	m.exposeController(t)
	// This pod stands for the proxy process, which listens on every
	// address, the pod IP included.
	m.c.StartPod(t, harness.PodSpec{Namespace: "nodemesh", Name: "nodemesh-proxy-node-a", Node: "node-a", Labels: shadow.ProxySelector})
	kubeconfig := "--kubeconfig=" + m.c.Kubeconfig()
	out, stderr, code = runNodemesh(t, "status", kubeconfig, "-n", "shop", "web", "-o", "json")
	services = nil
	if err := json.Unmarshal([]byte(out), &services); err != nil || code != 0 || len(services) != 1 || services[0].Split == nil || !services[0].Split.Observed {
		t.Errorf("status through the apiserver: exit %d, %v:\n%s%s", code, err, out, stderr)
	}
	stopOK = m.backgroundTraffic("web.shop.mesh", "/", 10*time.Millisecond, 30*time.Second)
	out, stderr, code = runNodemesh(t, "top", kubeconfig, "--once", "--interval=2s", "-n", "shop")
	stopOK()
	if frames := strings.Split(strings.TrimSpace(out), "\n\n"); code != 0 || len(frames) != 1 || len(parseTop(t, frames[0])) != 2 || !strings.Contains(out, "1 proxies") {
		t.Errorf("top through the apiserver: exit %d\n%s%s", code, out, stderr)
	}

	t.Log("top --once with another namespace shows no edge")
	out, _, _ = runNodemesh(t, "top", "--proxy-urls="+m.proxyAdmin, "--interval=500ms", "--once", "-n", "default")
	if !strings.Contains(out, "(no requests)") {
		t.Errorf("top -n default:\n%s", out)
	}
}

// topRow is one parsed row of a top frame.
type topRow struct {
	source, dest, backend string
	rps, success          float64
	p50, p99              string
}

var topRowRE = regexp.MustCompile(`^(\S+)\s{2,}(\S+)\s{2,}(\S+)\s{2,}([\d.]+)\s{2,}([\d.]+)%\s{2,}(\S+)\s{2,}(\S+)\s*$`)

// parseTop parses a frame's rows after its title and header line.
func parseTop(t *testing.T, frame string) []topRow {
	t.Helper()
	lines := strings.Split(frame, "\n")
	var i int
	for i = 0; i < len(lines) && !strings.HasPrefix(lines[i], top.Header[0]); i++ {
	}
	if i == len(lines) || strings.Join(strings.Fields(lines[i]), " ") != strings.Join(top.Header, " ") {
		t.Fatalf("no header in frame:\n%s", frame)
	}
	var rows []topRow
	for _, l := range lines[i+1:] {
		f := topRowRE.FindStringSubmatch(l)
		if f == nil {
			t.Fatalf("row does not parse: %q", l)
		}
		rps, _ := strconv.ParseFloat(f[4], 64)
		success, _ := strconv.ParseFloat(f[5], 64)
		rows = append(rows, topRow{source: f[1], dest: f[2], backend: f[3], rps: rps, success: success, p50: f[6], p99: f[7]})
	}
	return rows
}
