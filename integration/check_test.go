package integration_test

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nodemesh/nodemesh/pkg/check"
	"github.com/nodemesh/nodemesh/pkg/controller"
	"github.com/nodemesh/nodemesh/pkg/controllerapi"
	"github.com/nodemesh/nodemesh/pkg/dns"
)

// checkCorefile is a kubeadm-like Corefile; nothing runs it here, since
// `check` reads the ConfigMap, not CoreDNS.
const checkCorefile = `.:53 {
    errors
    health
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
    }
    forward . /etc/resolv.conf
    cache 30
    reload
}
`

// staleProxyPort is the one port of the controller's TCP range in this
// test; holding it makes the proxy reject the next table.
const staleProxyPort = 10950

// TestCheckFindsEachInjectedFailure runs `nodemesh check` against a healthy
// mesh, where every line is ✔, then injects one failure at a time (the DNS
// patch removed, the SMI CRDs deleted, a stale table version on the node's
// proxy, the proxy stopped) and sees exactly the matching line turn ✘, with
// a fix, and the exit code turn non-zero.
func TestCheckFindsEachInjectedFailure(t *testing.T) {
	m := startOpsMesh(t, func(cfg *controller.Config) {
		cfg.TCPPortRange = fmt.Sprintf("%d-%d", staleProxyPort, staleProxyPort)
	})
	c := m.c
	ctx := t.Context()

	t.Log("CoreDNS as kubeadm installs it, patched by nodemesh")
	if _, err := c.Client().CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: "kube-system"},
		Data:       map[string]string{"Corefile": checkCorefile},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client().AppsV1().Deployments("kube-system").Create(ctx, coreDNSDeploymentObject(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	patcher, err := dns.NewPatcher(dns.PatcherOptions{Client: c.Client(), Options: dns.Options{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := patcher.Patch(ctx); err != nil {
		t.Fatal(err)
	}
	m.exposeController(t)

	t.Log("healthy: every check passes, reaching the controller through the apiserver's service proxy")
	kubeconfig := "--kubeconfig=" + c.Kubeconfig()
	out, stderr, code := runNodemesh(t, "check", kubeconfig, "--grace=2s")
	if code != 0 || strings.Contains(out, "✘") || strings.Count(out, "✔") != 9 {
		t.Fatalf("healthy mesh: exit %d\n%s%s", code, out, stderr)
	}
	t.Logf("nodemesh check:\n%s", out)
	// The proxies line asks every replica, each through its pod.
	replicas, err := controllerapi.Replicas(ctx, controllerapi.ServiceProxy{Kube: c.Client()})
	if err != nil || len(replicas) != 1 || replicas[0].Pod != "nodemesh-controller-0" {
		t.Fatalf("controller replicas: %v %+v", err, replicas)
	}
	if n, err := replicas[0].API.Nodes(ctx); err != nil || len(n.Nodes) != 1 {
		t.Fatalf("nodes through %s: %v %+v", replicas[0].API.Where(), err, n)
	}

	viaURL := []string{"check", kubeconfig, "--controller-url=" + m.ctrl.URL, "--grace=2s", "-o", "json"}

	t.Log("the DNS patch removed")
	if _, err := patcher.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	expectCheck(t, viaURL, check.NameDNS, "lacks")
	if _, err := patcher.Patch(ctx); err != nil {
		t.Fatal(err)
	}
	expectCheck(t, viaURL, "", "")

	t.Log("the SMI CRDs deleted")
	if _, err := c.Kubectl(t, "delete", "-k", repoPath(t, "smi", "crds"), "--wait=true"); err != nil {
		t.Fatal(err)
	}
	expectCheck(t, viaURL, check.NameSMICRDs, "not served")
	installSMICRDs(t, c)
	expectCheck(t, viaURL, "", "")

	t.Log("a stale table version: the proxy cannot open the port of a new TCP service, so it keeps its old table")
	held, err := net.Listen("tcp", fmt.Sprintf(":%d", staleProxyPort))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	createService(t, c, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db", Annotations: map[string]string{"nodemesh.io/traffic-type": "tcp"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web", "version": "v1"},
			Ports: []corev1.ServicePort{{Name: "tcp", Port: 5432, TargetPort: intstr.FromString("tcp-echo")}}},
	})
	expectCheck(t, viaURL, check.NameProxies, "node-a: proxy on table version")
	held.Close()
	expectCheck(t, viaURL, "", "")

	t.Log("the proxy stopped")
	if err := m.proxy.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	expectCheck(t, viaURL, check.NameProxies, "node-a: proxy not connected")
	text, _, code := runNodemesh(t, "check", kubeconfig, "--controller-url="+m.ctrl.URL, "--grace=0s")
	if code == 0 || !strings.Contains(text, "✘ proxies: node-a: proxy not connected") || !strings.Contains(text, "    fix: ") {
		t.Errorf("text output with the proxy stopped: exit %d\n%s", code, text)
	}
}

// expectCheck runs `nodemesh check` (args, with -o json) until exactly the
// check named failing fails saying want, or every check passes when
// failing is "", and fails the test if that does not happen within settle.
// The exit code must be non-zero exactly when a check fails.
func expectCheck(t *testing.T, args []string, failing, want string) {
	t.Helper()
	var last string
	deadline := time.Now().Add(settle)
	for time.Now().Before(deadline) {
		out, stderr, code := runNodemesh(t, args...)
		var r check.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("check -o json: %v\n%s%s", err, out, stderr)
		}
		var failed []string
		matched := failing == ""
		for _, c := range r.Checks {
			if !c.OK {
				failed = append(failed, c.Name+": "+c.Message)
				matched = matched || (c.Name == failing && strings.Contains(c.Message, want) && c.Fix != "")
			}
		}
		wantFailed := 0
		if failing != "" {
			wantFailed = 1
		}
		if matched && len(failed) == wantFailed && (code != 0) == (wantFailed == 1) && len(r.Checks) == 9 {
			if failing != "" {
				t.Logf("✘ %s (exit %d)", failed[0], code)
			}
			return
		}
		last = fmt.Sprintf("exit %d, failed %q", code, failed)
		time.Sleep(time.Second)
	}
	t.Fatalf("want only %q failing with %q; last run: %s", failing, want, last)
}
