package integration_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/nodemesh/nodemesh/integration/harness"
)

// TestNodeNetworks checks the harness's multi-node network on its own: each
// node is a network namespace with its own kube-proxy, pods reach pods on
// other nodes from their own IP, and a ClusterIP is translated by the
// client's node, to every node's pods or, with internalTrafficPolicy Local,
// to that node's only.
//
// Once the cluster's test has ended, no process, link or route of it is left.
func TestNodeNetworks(t *testing.T) {
	t.Run("cluster", testNodeNetworks)
	if left := leftovers(t); len(left) > 0 {
		t.Errorf("left behind after the cluster's test ended:\n%s", strings.Join(left, "\n"))
	}
}

func testNodeNetworks(t *testing.T) {
	c := harness.Start(t, harness.WithNodeNetworks())
	createNamespaces(t, c, "shop")
	names := []string{"node-a", "node-b", "node-c"}
	pods := map[string]*harness.Pod{}
	for _, name := range names {
		c.AddNode(t, name)
		pods[name] = c.StartPod(t, harness.PodSpec{Namespace: "shop", Name: "web-" + name, Node: name, Labels: map[string]string{"app": "web"}})
	}
	for _, name := range names {
		c.StartKubeProxy(t, name)
	}
	client := c.StartPod(t, harness.PodSpec{Namespace: "shop", Name: "client", Node: "node-a"})
	if !client.IP.IsValid() || !netip.MustParsePrefix("10.244.1.0/24").Contains(client.IP) {
		t.Fatalf("client pod on node-a has IP %s, want one in node-a's pod CIDR", client.IP)
	}

	t.Log("a pod on node-a reaches the pods on every node by pod IP, from its own IP")
	for _, name := range names {
		who, err := getFromPod(t.Context(), client, "http://"+pods[name].AddrPort("http").String()+"/", "")
		if err != nil {
			t.Fatalf("GET %s from the client pod: %v", pods[name].Name, err)
		}
		if who.Pod != pods[name].Name || ipOfAddrPort(who.Request.RemoteAddr) != client.IP {
			t.Errorf("pod %s answered as %s and saw the request from %s; want itself and %s", pods[name].Name, who.Pod, who.Request.RemoteAddr, client.IP)
		}
	}

	t.Log("the harness namespace reaches every node's pods too")
	if got := whoami(t, pods["node-c"]); got.Pod != "web-node-c" {
		t.Errorf("web-node-c answered as %s", got.Pod)
	}

	cluster := createWebService(t, c, "web", nil)
	local := createWebService(t, c, "web-local", ptr.To(corev1.ServiceInternalTrafficPolicyLocal))

	t.Log("the ClusterIP reaches the pods of every node; the Local one only node-a's")
	seen := map[string]bool{}
	waitUntil(t, settle, "the ClusterIP to reach the pods of all three nodes", func() bool {
		who, err := getFromPod(t.Context(), client, "http://"+cluster.String()+"/", "")
		if err == nil {
			seen[who.Pod] = true
		}
		return len(seen) == 3
	})
	waitUntil(t, settle, "the Local ClusterIP to answer", func() bool {
		_, err := getFromPod(t.Context(), client, "http://"+local.String()+"/", "")
		return err == nil
	})
	for range 30 {
		who, err := getFromPod(t.Context(), client, "http://"+local.String()+"/", "")
		if err != nil {
			t.Fatal(err)
		}
		if who.Pod != "web-node-a" || ipOfAddrPort(who.Request.RemoteAddr) != client.IP {
			t.Fatalf("the Local ClusterIP from node-a reached %s, seeing the request from %s; want web-node-a, seeing %s", who.Pod, who.Request.RemoteAddr, client.IP)
		}
	}
}

// TestKubeProxyWithoutNodeNetworks runs kube-proxy in the plain harness,
// where everything shares one namespace: it serves the one node, so single
// node tests and the demo can use ClusterIPs.
func TestKubeProxyWithoutNodeNetworks(t *testing.T) {
	c := harness.Start(t)
	createNamespaces(t, c, "shop")
	c.AddNode(t, "node-a")
	c.StartPod(t, harness.PodSpec{Namespace: "shop", Name: "web", Node: "node-a", Labels: map[string]string{"app": "web"}})
	client := c.StartPod(t, harness.PodSpec{Namespace: "shop", Name: "client", Node: "node-a"})
	c.StartKubeProxy(t, "node-a")
	ip := createWebService(t, c, "web", ptr.To(corev1.ServiceInternalTrafficPolicyLocal))
	waitUntil(t, settle, "the ClusterIP to answer", func() bool {
		who, err := getFromPod(t.Context(), client, "http://"+ip.String()+"/", "")
		return err == nil && who.Pod == "web" && ipOfAddrPort(who.Request.RemoteAddr) == client.IP
	})
}

// createWebService creates a Service for the app=web pods' HTTP port and
// returns its ClusterIP.
func createWebService(t *testing.T, c *harness.Cluster, name string, policy *corev1.ServiceInternalTrafficPolicy) netip.Addr {
	t.Helper()
	svc, err := c.Client().CoreV1().Services("shop").Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
		Spec: corev1.ServiceSpec{
			Selector:              map[string]string{"app": "web"},
			Ports:                 []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
			InternalTrafficPolicy: policy,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return netip.MustParseAddr(svc.Spec.ClusterIP)
}

// getFromPod sends GET url from the pod, one connection per request, with
// the Host header host (empty: from the URL), and decodes the WhoAmI.
func getFromPod(ctx context.Context, from *harness.Pod, url, host string) (harness.WhoAmI, error) {
	tr := from.HTTPTransport(nil)
	tr.DisableKeepAlives = true
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return harness.WhoAmI{}, err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := client.Do(req)
	if err != nil {
		return harness.WhoAmI{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return harness.WhoAmI{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return harness.WhoAmI{}, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return decodeWhoAmI(body)
}

// ipOfAddrPort is the IP of a host:port, the zero Addr if it is not one.
func ipOfAddrPort(hostport string) netip.Addr {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}

// leftovers lists this test binary's child processes and the node network
// links and routes in the harness namespace.
func leftovers(t *testing.T) []string {
	t.Helper()
	var left []string
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ")".
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(os.Getpid()) {
			left = append(left, "process "+strings.TrimSpace(s[:strings.LastIndexByte(s, ')')+1]))
		}
	}
	for _, args := range [][]string{{"-o", "link", "show"}, {"route", "show"}} {
		out, err := exec.Command("ip", args...).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "nmbr") || strings.Contains(line, "10.244.") {
				left = append(left, strings.Join(args, " ")+": "+line)
			}
		}
	}
	return left
}
