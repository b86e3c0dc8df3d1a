package integration_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/integration/harness"
	"github.com/nodemesh/nodemesh/pkg/controller"
	"github.com/nodemesh/nodemesh/pkg/shadow"
)

// artifactsEnv names a directory where browser tests keep their
// screenshots; without it they go to the test's temporary directory.
const artifactsEnv = "NODEMESH_TEST_ARTIFACTS"

// TestDashboardInChromium opens the controller's dashboard in headless
// Chromium (Debian's package, driven over the DevTools protocol by
// chromedp) while a client pod sends traffic: the page lists the demo
// services, shows the split with its observed shares and the traffic graph,
// the proxy, an object error and its Event; after the TrafficSplit's
// weights are changed through the API, the page shows the new weights.
func TestDashboardInChromium(t *testing.T) {
	chromium := findChromium(t)
	m := startOpsMesh(t, func(cfg *controller.Config) { cfg.Dashboard = true })
	// The dashboard finds proxies by their pods: this pod stands for the
	// proxy process, which listens on every address, the pod IP included.
	m.c.StartPod(t, harness.PodSpec{Namespace: "nodemesh", Name: "nodemesh-proxy-node-a", Node: "node-a", Labels: shadow.ProxySelector})
	createService(t, m.c, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "legacy"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "legacy.example"}})
	stop := m.backgroundTraffic("web.shop.mesh", "/", 10*time.Millisecond, 2*time.Minute)
	defer stop()

	alloc, cancel := chromedp.NewExecAllocator(t.Context(),
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1400),
	)
	defer cancel()
	browser, cancel := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	defer cancel()
	ctx, cancel := context.WithTimeout(browser, 3*time.Minute)
	defer cancel()

	page := m.ctrl.URL + "/dashboard/"
	t.Logf("opening %s", page)
	waitFor := func(what, js string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(settle))); err != nil {
			body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
			t.Fatalf("the page never showed %s: %v\npage text:\n%s", what, err, body)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	waitFor("the demo services", `["shop/web", "shop/web-v1", "shop/web-v2"].every(s => document.querySelector('[data-service="' + s + '"]'))`)
	waitFor("the split at 80/20", splitWeightJS("web-v1", 80)+" && "+splitWeightJS("web-v2", 20))
	waitFor("observed shares", `/observed \d/.test(document.querySelector('[data-split="shop/canary"] [data-backend="web-v2"] .observed').textContent)`)
	waitFor("the traffic graph", `document.querySelectorAll('#graph path.edge').length >= 2 && document.querySelector('#graph').textContent.includes('shop/Pod/client')`)
	waitFor("the proxy and its pod", `['yes', 'nodemesh-proxy-node-a'].every(s => (document.querySelector('[data-node="node-a"]') || {}).textContent?.includes(s))`)
	waitFor("the ExternalName service's error", `document.querySelector('#errors').textContent.includes('shop/legacy: not meshable')`)
	waitFor("its Event", `document.querySelector('#events').textContent.includes('NotMeshable')`)

	t.Log("the TrafficSplit's weights change through the API: 50/50")
	splits := newSMIClients(t, m.c).split.SplitV1alpha4().TrafficSplits("shop")
	canary, err := splits.Get(t.Context(), "canary", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	canary.Spec.Backends = []splitv1alpha4.TrafficSplitBackend{{Service: "web-v1", Weight: 50}, {Service: "web-v2", Weight: 50}}
	edited := time.Now()
	if _, err := splits.Update(t.Context(), canary, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("the new weights", splitWeightJS("web-v1", 50)+" && "+splitWeightJS("web-v2", 50))
	t.Logf("the page showed the new weights %s after the update", time.Since(edited).Round(10*time.Millisecond))

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG; less is JPEG
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv(artifactsEnv)
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "dashboard.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot (%d bytes): %s", len(png), shot)
	if stop() == 0 {
		t.Error("no request answered during the test")
	}
}

// splitWeightJS is a JavaScript condition: the canary split shows backend
// with weight w.
func splitWeightJS(backend string, w int) string {
	return `(document.querySelector('[data-split="shop/canary"] [data-backend="` + backend + `"] .weight') || {}).textContent === 'weight ` + strconv.Itoa(w) + `'`
}

// findChromium returns Debian's chromium. In CI (CI=true) a missing browser
// fails the test (.ci/install-deps installs it); elsewhere the test skips.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed; .ci/install-deps installs it (apt-get install -y chromium)")
	}
	t.Skip("chromium is not installed (apt-get install -y chromium): skipping the dashboard browser test")
	return ""
}
