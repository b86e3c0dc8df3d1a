package integration_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nodemesh/nodemesh/integration/harness"
	"github.com/nodemesh/nodemesh/pkg/controller"
	"github.com/nodemesh/nodemesh/pkg/dns"
)

// clusterDNS is the kube-dns Service's ClusterIP, as kubeadm picks it
// (the tenth address of the Service range).
var clusterDNS = netip.MustParseAddrPort("10.96.0.10:53")

// meshNode is one node of the multi-node mesh, with its own network
// namespace and kube-proxy, a nodemesh proxy pod and a client pod.
type meshNode struct {
	*harness.Node
	proxy  *harness.ProcessPod
	client *harness.Pod
	// http sends from the client pod, resolving names through the cluster
	// DNS, one connection per request so each one goes through kube-proxy's
	// translation and shows a failure of the path at once.
	http *http.Client
}

// startCoreDNS runs the real CoreDNS as the cluster DNS, the way a cluster
// does: a Deployment (scaled to zero: the test runs the pod) and its
// Corefile ConfigMap in kube-system, patched by pkg/dns as `nodemesh dns
// patch` would, a CoreDNS pod on node whose Corefile is the ConfigMap's (as
// the kubelet mounts it), and the kube-dns Service at clusterDNS.
func startCoreDNS(t *testing.T, c *harness.Cluster, node string) *harness.ProcessPod {
	t.Helper()
	ctx := t.Context()
	client := c.Client()
	// No forward to an upstream: nothing may leave the test's namespaces.
	corefile := fmt.Sprintf(`.:53 {
    errors
    ready :8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       kubeconfig %s harness
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
`, c.Kubeconfig())
	if _, err := client.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: "kube-system"},
		Data:       map[string]string{"Corefile": corefile},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AppsV1().Deployments("kube-system").Create(ctx, coreDNSDeploymentObject(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := dns.NewPatcher(dns.PatcherOptions{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Patch(ctx); err != nil {
		t.Fatalf("dns patch: %v", err)
	}
	cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "Corefile")
	if err := os.WriteFile(path, []byte(cm.Data["Corefile"]), 0o644); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"k8s-app": "kube-dns"}
	if _, err := client.CoreV1().Services("kube-system").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-dns", Labels: labels},
		Spec: corev1.ServiceSpec{
			ClusterIP: clusterDNS.Addr().String(),
			Selector:  labels,
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("dns")},
				{Name: "dns-tcp", Port: 53, TargetPort: intstr.FromString("dns-tcp")},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := c.StartProcessPod(t, harness.ProcessPodSpec{
		PodSpec: harness.PodSpec{Namespace: "kube-system", Name: "coredns-" + node, Node: node, Labels: labels, Ports: []harness.Port{
			{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
			{Name: "dns-tcp", Port: 53},
		}},
		Command:   []string{filepath.Join(c.ToolsDir, "coredns"), "-conf", path},
		Readiness: &harness.HTTPProbe{Port: 8181, Path: "/ready"},
	})
	pod.WaitReady(t, dnsSettle)
	return pod
}

// startMeshProxy runs `$NODEMESH_BIN proxy` as the proxy DaemonSet's pod on
// node, gated by its /ready, watching the controller at controllerURL.
func startMeshProxy(t *testing.T, c *harness.Cluster, node, controllerURL string) *harness.ProcessPod {
	t.Helper()
	bin, err := nodemeshBin()
	if err != nil {
		t.Fatal(err)
	}
	return c.StartProcessPod(t, harness.ProcessPodSpec{
		PodSpec: harness.PodSpec{Namespace: "nodemesh", Name: "nodemesh-proxy-" + node, Node: node, Labels: proxyLabels, Ports: []harness.Port{
			{Name: "http", Port: proxyHTTPPort},
			{Name: "admin", Port: proxyAdminPort},
		}},
		Command: []string{bin, "proxy", "--node=$(NODE_NAME)", "--controller-url=" + controllerURL,
			fmt.Sprintf("--http-port=%d", proxyHTTPPort), fmt.Sprintf("--admin-port=%d", proxyAdminPort)},
		// A short period measures start to ready closely; the DaemonSet's is 2s.
		Readiness: &harness.HTTPProbe{Port: proxyAdminPort, Path: "/ready", Period: 25 * time.Millisecond},
	})
}

// startFixedController runs the controller in this process on port, without
// leader election, so that it can be stopped and started again at the same
// URL. Nodes reach it through the gateway.
func startFixedController(t *testing.T, c *harness.Cluster, port int) *meshController {
	t.Helper()
	return startController(t, c, func(cfg *controller.Config) {
		cfg.APIPort = port
		cfg.LeaderElect = false
	})
}

// newPodMeshClient is an HTTP client sending from pod, resolving through the
// cluster DNS.
func newPodMeshClient(pod *harness.Pod) *http.Client {
	tr := pod.HTTPTransport(pod.Resolver(clusterDNS))
	tr.DisableKeepAlives = true
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// meshGet sends GET url from n's client pod and decodes the WhoAmI.
func (n *meshNode) meshGet(ctx context.Context, url string) (harness.WhoAmI, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return harness.WhoAmI{}, err
	}
	resp, err := n.http.Do(req)
	if err != nil {
		return harness.WhoAmI{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return harness.WhoAmI{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return harness.WhoAmI{}, &statusError{code: resp.StatusCode, err: fmt.Errorf("GET %s from %s: %s: %s", url, n.client.Key(), resp.Status, body)}
	}
	return decodeWhoAmI(body)
}

// statusError is an answer other than 200.
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }

// failureKind sorts a failed request by what failed: "refused" (nothing
// listened where kube-proxy sent the connection), "no route" (a proxy
// without a table answered: every table routes web.shop.mesh), or "other".
func failureKind(err error) string {
	var se *statusError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.As(err, &se) && se.code == http.StatusNotFound && strings.Contains(se.Error(), "no route for host"):
		return "no route"
	}
	return "other"
}

// servingNode names the node whose proxy forwarded a request, from the source
// address the backend saw: a proxy dials from its node's namespace, whose
// only addresses are the node IP (to other nodes) and its pods' IPs (to a
// pod on the same node), and nothing on the way rewrites it.
func servingNode(nodes []*meshNode, who harness.WhoAmI) string {
	ip := ipOfAddrPort(who.Request.RemoteAddr)
	for _, n := range nodes {
		if ip == n.IP || n.PodCIDR.Contains(ip) {
			return n.Name
		}
	}
	return "unknown (" + who.Request.RemoteAddr + ")"
}

// proxyRequests sums nodemesh_proxy_http_requests_total over its series on
// the proxy's /metrics, read from the harness namespace (the gateway routes
// to every node's pods).
func proxyRequests(t *testing.T, proxy *harness.ProcessPod) float64 {
	t.Helper()
	url := fmt.Sprintf("http://%s/metrics", netip.AddrPortFrom(proxy.IP, proxyAdminPort))
	resp, err := plainHTTP.Get(url)
	if err != nil {
		t.Fatalf("metrics of %s: %v", proxy.Key(), err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "nodemesh_proxy_http_requests_total{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metrics of %s: %q: %v", proxy.Key(), line, err)
		}
		sum += v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sum
}

// requestCounts reads proxyRequests of every node's proxy.
func requestCounts(t *testing.T, nodes []*meshNode) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, n := range nodes {
		out[n.Name] = proxyRequests(t, n.proxy)
	}
	return out
}
