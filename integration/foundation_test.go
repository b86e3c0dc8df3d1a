package integration_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/nodemesh/nodemesh/integration/harness"
)

// settle bounds every wait for a controller to react.
const settle = 30 * time.Second

// TestFoundation is the acceptance scenario of the foundation issue: a real
// control plane publishes harness pods in an EndpointSlice, they answer on
// their IPs, and readiness and deletion behave as in a real cluster.
func TestFoundation(t *testing.T) {
	c := harness.Start(t)
	client := c.Client()
	ctx := t.Context()

	const ns = "shop"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "whoami"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "whoami"},
			Ports:    []corev1.ServicePort{{Name: "web", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
	if _, err := client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service: %v", err)
	}
	c.AddNode(t, "node-a")
	c.AddNode(t, "node-b")
	labels := map[string]string{"app": "whoami"}
	a := c.StartPod(t, harness.PodSpec{Namespace: ns, Name: "whoami-a", Node: "node-a", Labels: labels})
	b := c.StartPod(t, harness.PodSpec{Namespace: ns, Name: "whoami-b", Node: "node-b", Labels: labels})

	t.Log("one EndpointSlice lists both pod IPs, each with its node, both ready")
	waitForEndpoints(t, c, ns, "whoami", map[string]endpoint{
		a.IP.String(): readyOn("node-a"),
		b.IP.String(): readyOn("node-b"),
	})

	t.Log("each pod answers HTTP on its IP with its own name")
	for _, p := range []*harness.Pod{a, b} {
		got := whoami(t, p)
		if got.Pod != p.Name || got.Namespace != ns || got.Node != p.Node {
			t.Errorf("pod %s answered as %s/%s on %s", p.Key(), got.Namespace, got.Pod, got.Node)
		}
		expectEcho(t, "tcp", p.AddrPort("tcp-echo").String())
		expectEcho(t, "udp", p.AddrPort("udp-echo").String())
	}

	// With publishNotReadyAddresses=false the EndpointSlice controller keeps
	// a not-ready pod in the slice, with ready=false, serving=false and
	// terminating=false: it leaves the set of ready endpoints, not the slice. Consumers (kube-proxy,
	// nodemesh) route to ready endpoints only.
	t.Log("a not-ready pod stays in the slice with ready=false, and keeps serving")
	a.SetReady(t, false)
	waitForEndpoints(t, c, ns, "whoami", map[string]endpoint{
		a.IP.String(): notReadyOn("node-a"),
		b.IP.String(): readyOn("node-b"),
	})
	whoami(t, a)

	t.Log("a deleted pod's process stops, its IP goes away, and it leaves the slice")
	pid := b.Process().Pid()
	b.Delete(t)
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process %d of deleted pod %s: signal 0 gave %v, want no such process", pid, b.Key(), err)
	}
	// Delete also takes the IP off lo, as a real pod's network goes with it,
	// so the namespace has no route to it any more: not even "refused".
	if _, err := net.DialTimeout("tcp", b.AddrPort("http").String(), 2*time.Second); !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("dial deleted pod %s: got %v, want network unreachable", b.Key(), err)
	}
	waitForEndpoints(t, c, ns, "whoami", map[string]endpoint{
		a.IP.String(): notReadyOn("node-a"),
	})
}

// TestHarnessRejectsBadUse checks that mistakes in a test's use of the
// harness fail with errors that name the mistake, and leave nothing behind.
func TestHarnessRejectsBadUse(t *testing.T) {
	c := harness.Start(t)
	c.AddNode(t, "node-a")
	first := c.StartPod(t, harness.PodSpec{Name: "first", Node: "node-a"})

	tests := []struct {
		name    string
		spec    harness.PodSpec
		wantErr string
	}{{
		name: "port clash",
		spec: harness.PodSpec{Name: "clash", Node: "node-a", Ports: []harness.Port{
			{Name: "http", Port: 8080, Server: harness.ServerWhoAmI},
			{Name: "echo", Port: 8080, Server: harness.ServerTCPEcho},
		}},
		wantErr: `port clash: TCP port 8080 is declared twice (as "http" and "echo")`,
	}, {
		name:    "IP reused while in use",
		spec:    harness.PodSpec{Name: "reuse", Node: "node-a", IP: first.IP},
		wantErr: fmt.Sprintf("address %s is already in use by pod default/first", first.IP),
	}, {
		name:    "unknown node",
		spec:    harness.PodSpec{Name: "lost", Node: "node-z"},
		wantErr: `unknown node "node-z"`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod, err := c.TryStartPod(t, tt.spec)
			if err == nil {
				t.Fatalf("started pod %s; want error %q", pod.Key(), tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not say %q", err, tt.wantErr)
			}
			_, err = c.Client().CoreV1().Pods("default").Get(t.Context(), tt.spec.Name, metav1.GetOptions{})
			if err == nil {
				t.Errorf("a Pod object %q was left behind", tt.spec.Name)
			}
		})
	}

	t.Run("IP reused after delete", func(t *testing.T) {
		ip := first.IP
		first.Delete(t)
		again := c.StartPod(t, harness.PodSpec{Name: "again", Node: "node-a", IP: ip})
		if got := whoami(t, again); got.Pod != "again" {
			t.Errorf("%s answered as %s, want again", ip, got.Pod)
		}
	})
}

// TestHarnessToolsUseTheCluster checks that kubectl and a long-running tool
// (CoreDNS, as the DNS work will run it) reach the harness apiserver through
// its kubeconfig, and that the apiserver reports the pinned version.
func TestHarnessToolsUseTheCluster(t *testing.T) {
	c := harness.Start(t)
	out, err := c.Kubectl(t, "version", "--output=json")
	if err != nil {
		t.Fatal(err)
	}
	var version struct {
		ServerVersion struct{ GitVersion string } `json:"serverVersion"`
	}
	if err := json.Unmarshal([]byte(out), &version); err != nil {
		t.Fatalf("kubectl version: %v:\n%s", err, out)
	}
	if got := version.ServerVersion.GitVersion; got != "v1.37.2" {
		t.Errorf("apiserver reports version %q, want v1.37.2", got)
	}

	corefile := filepath.Join(t.TempDir(), "Corefile")
	const dnsAddr = "127.0.53.1:53"
	config := fmt.Sprintf(".:53 {\n  bind 127.0.53.1\n  kubernetes cluster.local {\n    kubeconfig %s harness\n  }\n}\n", c.Kubeconfig())
	if err := os.WriteFile(corefile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	c.RunTool(t, "coredns", "-conf", corefile)
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, dnsAddr)
	}}
	c.WaitFor(t, settle, "CoreDNS to resolve the kubernetes Service", func(ctx context.Context) (bool, error) {
		addrs, err := resolver.LookupHost(ctx, "kubernetes.default.svc.cluster.local")
		if err != nil {
			return false, harness.NotYet("%v", err)
		}
		if len(addrs) != 1 || addrs[0] != "10.96.0.1" {
			return false, fmt.Errorf("kubernetes.default resolves to %v, want [10.96.0.1]", addrs)
		}
		return true, nil
	})
}

// endpoint is what the tests check of an EndpointSlice endpoint.
type endpoint struct {
	node                        string
	ready, serving, terminating bool
}

// readyOn is a ready endpoint of a running pod on node.
func readyOn(node string) endpoint { return endpoint{node: node, ready: true, serving: true} }

// notReadyOn is the endpoint of a running pod on node that fails readiness.
func notReadyOn(node string) endpoint { return endpoint{node: node} }

// waitForEndpoints waits until the Service has exactly one EndpointSlice and
// it lists exactly want, keyed by IP. Other states on the way, such as a
// deleted pod briefly listed as terminating, only mean "not yet".
func waitForEndpoints(t *testing.T, c *harness.Cluster, ns, service string, want map[string]endpoint) {
	t.Helper()
	c.WaitFor(t, settle, fmt.Sprintf("the EndpointSlice of %s/%s to list %v", ns, service, want), func(ctx context.Context) (bool, error) {
		slices, err := c.Client().DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + service})
		if err != nil {
			return false, err
		}
		if len(slices.Items) != 1 {
			return false, harness.NotYet("%d slices", len(slices.Items))
		}
		got := map[string]endpoint{}
		for _, ep := range slices.Items[0].Endpoints {
			if len(ep.Addresses) != 1 || ep.NodeName == nil {
				return false, fmt.Errorf("endpoint without one address and a node name: %+v", ep)
			}
			got[ep.Addresses[0]] = endpoint{
				node:        *ep.NodeName,
				ready:       ptr.Deref(ep.Conditions.Ready, false),
				serving:     ptr.Deref(ep.Conditions.Serving, false),
				terminating: ptr.Deref(ep.Conditions.Terminating, false),
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) { // fmt sorts map keys
			return false, harness.NotYet("slice lists %v", got)
		}
		return true, nil
	})
}

// httpClient talks to pod IPs directly; it must ignore any proxy settings.
var httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}

// whoami GETs / from the pod's http port and expects 200 and a WhoAmI body.
func whoami(t *testing.T, p *harness.Pod) harness.WhoAmI {
	t.Helper()
	url := "http://" + p.AddrPort("http").String() + "/"
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200; body: %s", url, resp.StatusCode, body)
	}
	var got harness.WhoAmI
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("GET %s: body is not a WhoAmI: %v: %s", url, err, body)
	}
	return got
}

// expectEcho sends a line over network ("tcp" or "udp") to addr and expects
// it back unchanged.
func expectEcho(t *testing.T, network, addr string) {
	t.Helper()
	conn, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	msg := []byte("hello " + addr + "\n")
	if _, err := conn.Write(msg); err != nil {
		t.Fatalf("write %s %s: %v", network, addr, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatalf("read %s %s: %v", network, addr, err)
	}
	if string(got) != string(msg) {
		t.Errorf("%s echo from %s: got %q, want %q", network, addr, got, msg)
	}
}
