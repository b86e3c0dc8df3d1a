package integration_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	smimetrics "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/metrics/v1alpha1"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/nodemesh/nodemesh/integration/harness"
	"github.com/nodemesh/nodemesh/pkg/edgestats"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// TestObservability is issue 9 end to end on one node: a client pod of
// Deployment shop/client calls shop/web through a real proxy pod while a
// TrafficSplit sends 80/20 to web-v1 and web-v2.
//
//   - The proxy's edge metrics name the client's workload and each split
//     backend, with counts equal to the answers the client got from each.
//   - `nodemesh metrics-api`, registered with the shipped APIService, serves
//     the client deployment's edges through `kubectl get --raw`, with the
//     same count.
//   - A W3C traceparent (and tracestate, B3) sent by the client reaches
//     the backend unchanged.
func TestObservability(t *testing.T) {
	c := harness.Start(t)
	installSMICRDs(t, c)
	createNamespaces(t, c, "nodemesh", "shop")
	c.AddNode(t, "node-a")
	client := startOwnedPod(t, c, "shop", "client", "client-5d8f7c9b4-x7k2p")
	c.StartPod(t, harness.PodSpec{Namespace: "shop", Name: "web-v1", Node: "node-a", Labels: map[string]string{"app": "web", "version": "v1"}})
	c.StartPod(t, harness.PodSpec{Namespace: "shop", Name: "web-v2", Node: "node-a", Labels: map[string]string{"app": "web", "version": "v2"}})
	httpPort := []corev1.ServicePort{{Name: "web", Port: 80, TargetPort: intstr.FromString("http")}}
	for name, sel := range map[string]map[string]string{
		"web":    {"app": "web", "version": "v1"},
		"web-v1": {"app": "web", "version": "v1"},
		"web-v2": {"app": "web", "version": "v2"},
	} {
		createService(t, c, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}, Spec: corev1.ServiceSpec{Selector: sel, Ports: httpPort}})
	}
	if _, err := newSMIClients(t, c).split.SplitV1alpha4().TrafficSplits("shop").Create(t.Context(), &splitv1alpha4.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "canary"},
		Spec: splitv1alpha4.TrafficSplitSpec{Service: "web", Backends: []splitv1alpha4.TrafficSplitBackend{
			{Service: "web-v1", Weight: 80}, {Service: "web-v2", Weight: 20},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ctrl := startController(t, c, nil)
	proxy := startObservedProxy(t, c, "node-a", ctrl.URL)
	metricsAPI := startMetricsAPI(t, c)

	mesh := &obsClient{http: &http.Client{Transport: client.HTTPTransport(nil), Timeout: 10 * time.Second}, proxy: proxy.IP}
	t.Log("the proxy knows the client pod as Deployment/client and serves the split")
	waitUntil(t, settle, "the proxy's table to name the client's workload", func() bool {
		return proxyTableWorkload(proxy.IP, client.IP) == "Deployment/client"
	})
	waitUntil(t, settle, "the split to reach the proxy", func() bool {
		who, err := mesh.get(nil)
		return err == nil && who.Pod == "web-v2"
	})

	t.Log("1,000 requests through the split: the edge metrics match the answers")
	before := clientEdges(t, proxy.IP)
	answered := map[string]float64{}
	for range 1000 {
		who, err := mesh.get(nil)
		if err != nil {
			t.Fatal(err)
		}
		answered[who.Pod]++
	}
	after := clientEdges(t, proxy.IP)
	for backend, pod := range map[string]string{"web-v1": "web-v1", "web-v2": "web-v2"} {
		got, want := after[backend]-before[backend], answered[pod]
		if !within1pct(got, want) {
			t.Errorf("edge Deployment/client -> shop/web (%s): %v requests counted, the client got %v answers from %s", backend, got, want, pod)
		}
	}
	if answered["web-v2"] < 100 || answered["web-v2"] > 300 {
		t.Errorf("split answers %v, want about 80/20", answered)
	}

	t.Log("SMI TrafficMetrics through the aggregation layer list the edge with the same count")
	total := mesh.sent
	var edges smimetrics.TrafficMetricsList
	path := "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/deployments/client/edges"
	waitUntil(t, settle, "kubectl get --raw "+path+" to count every request", func() bool {
		out, err := c.Kubectl(t, "get", "--raw", path)
		if err != nil || json.Unmarshal([]byte(out), &edges) != nil {
			return false
		}
		return len(edges.Items) == 1 && metricOf(edges.Items[0], "success_count") >= 0.99*total
	})
	e := edges.Items[0]
	if e.Edge == nil || e.Edge.Direction != smimetrics.To || e.Edge.Resource.Kind != "Service" || e.Edge.Resource.Namespace != "shop" || e.Edge.Resource.Name != "web" {
		t.Errorf("edge %+v, want to Service shop/web", e.Edge)
	}
	if got := metricOf(e, "success_count") + metricOf(e, "failure_count"); !within1pct(got, total) {
		t.Errorf("TrafficMetrics count %v requests, the client sent %v", got, total)
	}
	if p99 := metricOf(e, "p99_response_latency"); p99 <= 0 || p99 > 10_000 {
		t.Errorf("p99 %v ms", p99)
	}
	t.Logf("edge: %v successes, %v failures, p50 %v ms, p90 %v ms, p99 %v ms, window %v (metrics-api log: %s)",
		metricOf(e, "success_count"), metricOf(e, "failure_count"), metricOf(e, "p50_response_latency"), metricOf(e, "p90_response_latency"),
		metricOf(e, "p99_response_latency"), e.Window.Duration, metricsAPI.Process().LogPath)

	t.Log("trace context sent by the client arrives at the backend unchanged")
	trace := http.Header{
		"Traceparent":  {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"Tracestate":   {"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"},
		"B3":           {"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"},
		"X-B3-Traceid": {"80f198ee56343ba864fe8b2a57d3eff7"},
		"X-B3-Spanid":  {"e457b5a2e4d86bd1"},
		"X-B3-Sampled": {"1"},
	}
	who, err := mesh.get(trace)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range trace {
		if got := who.Request.Headers.Values(name); strings.Join(got, ",") != want[0] {
			t.Errorf("backend saw %s %q, the client sent %q", name, got, want[0])
		}
	}
}

// startOwnedPod runs a pod owned by a Deployment, as a ReplicaSet's pod
// would be: the Deployment exists (nothing scales it here) and the pod
// names it its controller, so the mesh knows the pod's workload.
func startOwnedPod(t *testing.T, c *harness.Cluster, ns, deployment, pod string) *harness.Pod {
	t.Helper()
	labels := map[string]string{"app": deployment}
	zero := int32(0)
	d, err := c.Client().AppsV1().Deployments(ns).Create(t.Context(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: deployment},
		Spec: appsv1.DeploymentSpec{
			Replicas: &zero,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.test/client"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := c.StartPod(t, harness.PodSpec{Namespace: ns, Name: pod, Node: "node-a", Labels: labels})
	owner := fmt.Sprintf(`{"metadata":{"ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":%q,"uid":%q,"controller":true}]}}`, d.Name, d.UID)
	if _, err := c.Client().CoreV1().Pods(ns).Patch(t.Context(), pod, types.StrategicMergePatchType, []byte(owner), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	return p
}

// startObservedProxy runs `nodemesh proxy` as the proxy DaemonSet's pod on
// node, with edge metrics (the default) and an access log.
func startObservedProxy(t *testing.T, c *harness.Cluster, node, controllerURL string) *harness.ProcessPod {
	t.Helper()
	bin, err := nodemeshBin()
	if err != nil {
		t.Fatal(err)
	}
	p := c.StartProcessPod(t, harness.ProcessPodSpec{
		PodSpec: harness.PodSpec{Namespace: "nodemesh", Name: "nodemesh-proxy-" + node, Node: node, Labels: proxyLabels, Ports: []harness.Port{
			{Name: "http", Port: proxyHTTPPort}, {Name: "admin", Port: proxyAdminPort},
		}},
		Command: []string{bin, "proxy", "--node=$(NODE_NAME)", "--controller-url=" + controllerURL,
			fmt.Sprintf("--http-port=%d", proxyHTTPPort), fmt.Sprintf("--admin-port=%d", proxyAdminPort),
			"--access-log=" + filepath.Join(t.TempDir(), "access.log")},
		Readiness: &harness.HTTPProbe{Port: proxyAdminPort, Path: "/ready", Period: 100 * time.Millisecond},
	})
	p.WaitReady(t, settle)
	return p
}

// startMetricsAPI runs `nodemesh metrics-api` as a pod of the mesh
// namespace and registers it with the Service and APIService of
// daemonset/components/metrics-api, as shipped.
func startMetricsAPI(t *testing.T, c *harness.Cluster) *harness.ProcessPod {
	t.Helper()
	bin, err := nodemeshBin()
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app.kubernetes.io/name": "nodemesh", "app.kubernetes.io/component": "metrics-api"}
	p := c.StartProcessPod(t, harness.ProcessPodSpec{
		PodSpec: harness.PodSpec{Namespace: "nodemesh", Name: "nodemesh-metrics-api-0", Node: "node-a", Labels: labels, Ports: []harness.Port{{Name: "https", Port: 8443}}},
		Command: []string{bin, "metrics-api", "--kubeconfig=" + c.Kubeconfig(), "--listen-address=$(POD_IP)", "--port=8443",
			"--scrape-interval=500ms", "--window=10m", "--max-window=10m"},
	})
	p.WaitReady(t, settle)
	manifest, err := os.ReadFile(repoPath(t, "daemonset", "components", "metrics-api", "metrics-api.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var keep [][]byte
	for _, doc := range bytes.Split(manifest, []byte("\n---\n")) {
		var obj struct{ Kind string }
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatal(err)
		}
		if obj.Kind == "Service" || obj.Kind == "APIService" {
			keep = append(keep, doc)
		}
	}
	if len(keep) != 2 {
		t.Fatalf("the metrics-api manifest has %d of its Service and APIService", len(keep))
	}
	file := filepath.Join(t.TempDir(), "apiservice.yaml")
	if err := os.WriteFile(file, bytes.Join(keep, []byte("\n---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := c.Kubectl(t, "apply", "-f", file); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	waitUntil(t, settle, "the aggregated API's discovery", func() bool {
		out, err := c.Kubectl(t, "get", "--raw", "/apis/metrics.smi-spec.io/v1alpha1")
		return err == nil && strings.Contains(out, `"deployments/edges"`)
	})
	return p
}

// obsClient sends requests for web.shop.mesh from a client pod to the
// proxy, counting what it sent.
type obsClient struct {
	http  *http.Client
	proxy netip.Addr
	sent  float64
}

func (m *obsClient) get(header http.Header) (harness.WhoAmI, error) {
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/", netip.AddrPortFrom(m.proxy, proxyHTTPPort)), nil)
	if err != nil {
		return harness.WhoAmI{}, err
	}
	req.Host = "web.shop.mesh"
	for k, v := range header {
		req.Header[k] = v
	}
	m.sent++
	resp, err := m.http.Do(req)
	if err != nil {
		return harness.WhoAmI{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return harness.WhoAmI{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return harness.WhoAmI{}, fmt.Errorf("%s: %s", resp.Status, body)
	}
	return decodeWhoAmI(body)
}

// proxyTableWorkload is the workload the proxy's applied table gives ip.
func proxyTableWorkload(proxy, ip netip.Addr) string {
	resp, err := plainHTTP.Get(fmt.Sprintf("http://%s/config", netip.AddrPortFrom(proxy, proxyAdminPort)))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var tb table.Table
	if json.NewDecoder(resp.Body).Decode(&tb) != nil {
		return ""
	}
	for _, p := range tb.Pods {
		if p.IP == ip.String() {
			return p.Workload
		}
	}
	return ""
}

// clientEdges reads the proxy's edge request counters from
// Deployment/client to shop/web, by backend.
func clientEdges(t *testing.T, proxy netip.Addr) map[string]float64 {
	t.Helper()
	resp, err := plainHTTP.Get(fmt.Sprintf("http://%s/metrics", netip.AddrPortFrom(proxy, proxyAdminPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	s := edgestats.NewSample()
	if err := s.Add("proxy", resp.Body); err != nil {
		t.Fatal(err)
	}
	if !s.EdgeSeries {
		t.Fatal("the proxy serves no edge metrics")
	}
	out := map[string]float64{}
	for e, c := range s.Edges {
		if e.SourceNamespace == "shop" && e.SourceWorkload == "Deployment/client" && e.Namespace == "shop" && e.Service == "web" {
			out[e.Backend] += c.Requests
		}
	}
	return out
}

// metricOf reads one metric of a TrafficMetrics (latencies in ms).
func metricOf(tm *smimetrics.TrafficMetrics, name string) float64 {
	if m := tm.Get(name); m != nil && m.Value != nil {
		return m.Value.AsApproximateFloat64()
	}
	return -1
}

func within1pct(got, want float64) bool {
	d := got - want
	return want > 0 && d <= 0.01*want && d >= -0.01*want
}
