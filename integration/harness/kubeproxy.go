package harness

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// ClusterCIDR is the range of every node's pod CIDR, as kube-proxy's
// --cluster-cidr: traffic from it to a Service is pod traffic, which
// kube-proxy never masquerades, so backends see the pod's own IP.
const ClusterCIDR = "10.244.0.0/16"

// Where each kube-proxy serves, on its node's IP.
const (
	KubeProxyHealthzPort = 10256
	KubeProxyMetricsPort = 10249
)

// The harness namespace has no default route, and a connect to a ClusterIP
// needs some route before kube-proxy's output-hook DNAT picks the endpoint.
// Without node networks, StartKubeProxy routes ServiceCIDR to lo: a
// translated packet is routed again to the endpoint, and one kube-proxy does
// not translate is dropped as a martian, never sent anywhere. (A dummy
// device, as kube-proxy's IPVS mode uses, needs a kernel module that may be
// missing.) Node namespaces route everything to the gateway and need none.

// kubeProxies records the namespaces a kube-proxy runs in: two in one would
// fight over its nftables table.
var kubeProxies = struct {
	sync.Mutex
	in map[*netNS]string // namespace (nil: the harness one) -> node
}{in: map[*netNS]string{}}

// KubeProxy is a real kube-proxy (nftables mode) serving one node, running in
// that node's network namespace: it translates ClusterIPs for traffic that
// starts there, to that node's view of the endpoints (internalTrafficPolicy
// Local selects endpoints with the node's name).
type KubeProxy struct {
	*Process
	// Node is the node it serves.
	Node *Node
	// HealthzURL and MetricsURL are on the node's IP; reach them from the
	// node (Node.Do) or, with node networks, from the harness namespace.
	HealthzURL, MetricsURL string
	// ReadyAfter is how long it took from start to a healthy /healthz (its
	// first full sync of the rules).
	ReadyAfter time.Duration
}

// StartKubeProxy runs kube-proxy for node in nftables mode and waits until
// its /healthz passes, that is until it has programmed the Services once. It
// runs in the node's own namespace, or in the harness namespace for a
// cluster without node networks, where only one kube-proxy may run at a time
// (it serves one node: pods on other nodes are remote to it). It is stopped,
// and its nftables tables deleted, when t's test ends. extraArgs are
// appended to its flags.
//
// It uses the admin kubeconfig: the harness has no node credentials, and
// kube-proxy only reads.
func (c *Cluster) StartKubeProxy(t testing.TB, node string, extraArgs ...string) *KubeProxy {
	t.Helper()
	n, err := c.node(node)
	if err != nil {
		t.Fatalf("harness: kube-proxy: %v", err)
	}
	path, err := c.tool("kube-proxy")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatalf("harness: kube-proxy's nftables mode needs the nft command (Debian: apt-get install nftables; .ci/install-deps does): %v", err)
	}
	kubeProxies.Lock()
	if other, taken := kubeProxies.in[n.netns]; taken {
		kubeProxies.Unlock()
		t.Fatalf("harness: kube-proxy for node %s: node %s's kube-proxy already runs in that network namespace (without node networks only one can)", node, other)
	}
	kubeProxies.in[n.netns] = node
	kubeProxies.Unlock()
	t.Cleanup(func() {
		kubeProxies.Lock()
		delete(kubeProxies.in, n.netns)
		kubeProxies.Unlock()
	})

	if n.netns == nil {
		route := []string{ServiceCIDR, "dev", "lo", "src", n.IP.String()}
		if err := ipCommand(append([]string{"route", "add"}, route...)...); err != nil {
			t.Fatalf("harness: kube-proxy: %v", err)
		}
		t.Cleanup(func() { _ = ipCommand(append([]string{"route", "del"}, route...)...) })
	}
	// Registered before the process is, so it runs after the process stopped:
	// kube-proxy leaves its rules behind, and in the harness namespace they
	// would translate the next cluster's ClusterIPs.
	t.Cleanup(func() {
		for _, family := range []string{"ip", "ip6"} {
			_ = n.netns.do(func() error { return exec.Command("nft", "delete", "table", family, "kube-proxy").Run() })
		}
	})

	host := n.IP.String()
	healthz := net.JoinHostPort(host, fmt.Sprint(KubeProxyHealthzPort))
	metrics := net.JoinHostPort(host, fmt.Sprint(KubeProxyMetricsPort))
	args := append([]string{
		"--kubeconfig=" + c.kubeconfig,
		"--proxy-mode=nftables",
		"--hostname-override=" + node,
		"--cluster-cidr=" + ClusterCIDR,
		"--healthz-bind-address=" + healthz,
		"--metrics-bind-address=" + metrics,
		// nf_conntrack_max is one table for the whole machine; leave it be.
		"--conntrack-max-per-core=0",
		"--v=2",
	}, extraArgs...)
	logPath := filepath.Join(t.TempDir(), "kube-proxy-"+node+".log")
	began := time.Now()
	p, err := startProcessIn(n.netns, "kube-proxy for "+node, logPath, path, args, nil)
	if err != nil {
		t.Fatal(err)
	}
	manage(t, p)
	kp := &KubeProxy{Process: p, Node: n, HealthzURL: "http://" + healthz + "/healthz", MetricsURL: "http://" + metrics + "/metrics"}

	client := n.HTTPClient(2 * time.Second)
	c.WaitFor(t, startTimeout, "kube-proxy for "+node+" to sync its rules (/healthz)", func(ctx context.Context) (bool, error) {
		if p.Exited() {
			return false, p.exitError()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, kp.HealthzURL, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, NotYet("%v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, NotYet("/healthz answered %s", resp.Status)
		}
		return true, nil
	})
	kp.ReadyAfter = time.Since(began)
	t.Logf("harness: kube-proxy for %s synced in %s (log %s)", node, kp.ReadyAfter.Round(time.Millisecond), logPath)
	return kp
}

// HTTPClient is an HTTP client whose connections start in the node's
// network namespace (from the node itself, not from a pod), such as the
// kubelet's probes. URLs must name IP addresses.
func (n *Node) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:             nil,
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if host, _, err := net.SplitHostPort(addr); err != nil || net.ParseIP(host) == nil {
					return nil, fmt.Errorf("node %s: dial %s: want an IP address, not a name", n.Name, addr)
				}
				var conn net.Conn
				err := n.Do(func() (err error) {
					conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
					return err
				})
				return conn, err
			},
		},
	}
}
