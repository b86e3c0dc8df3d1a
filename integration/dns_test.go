package integration_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/nodemesh/nodemesh/integration/harness"
	"github.com/nodemesh/nodemesh/pkg/dns"
)

// dnsSettle bounds each wait on CoreDNS (start, sync, reload).
const dnsSettle = 30 * time.Second

// TestDNSPatchAndRestore is issue 6's scenario on a real apiserver and the
// real CoreDNS: the Corefile lives in the coredns ConfigMap; after
// `dns patch`, web.test.mesh (and its aliases) resolve to the shadow
// service's ClusterIP under the name asked; after `dns restore` they are
// NXDOMAIN and the ConfigMap is the original byte for byte.
func TestDNSPatchAndRestore(t *testing.T) {
	c := harness.Start(t)
	client := c.Client()
	ctx := t.Context()
	upstream := startFakeUpstream(t)

	dnsPort := freeLoopbackPort(t)
	server := fmt.Sprintf("127.0.0.1:%d", dnsPort)
	readyPort := freeLoopbackPort(t)
	original := fmt.Sprintf(`.:%d {
    bind 127.0.0.1
    errors
    health 127.0.0.1:%d {
       lameduck 1s
    }
    ready 127.0.0.1:%d
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       kubeconfig %s
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus 127.0.0.1:%d
    forward . %s {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
`, dnsPort, freeLoopbackPort(t), readyPort, c.Kubeconfig(), freeLoopbackPort(t), upstream.addr)

	t.Log("kube-system holds CoreDNS as kubeadm installs it: a Deployment and its Corefile ConfigMap")
	if _, err := client.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: "kube-system"},
		Data:       map[string]string{"Corefile": original},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AppsV1().Deployments("kube-system").Create(ctx, coreDNSDeploymentObject(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Log("a service web in test and its shadow web--test; a service whose shadow name is hashed")
	for _, ns := range []string{"test", "team--a", "nodemesh"} {
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	dnsCreateService(t, client.CoreV1().Services("test"), "web", nil)
	webShadow := dnsCreateService(t, client.CoreV1().Services("nodemesh"), "web--test", shadowLabels("test", "web"))
	sum := sha256.Sum256([]byte("team--a/api"))
	hashedName := "api-" + hex.EncodeToString(sum[:])[:10]
	apiShadow := dnsCreateService(t, client.CoreV1().Services("nodemesh"), hashedName, shadowLabels("team--a", "api"))

	t.Log("the real CoreDNS runs the Corefile the kubelet would mount from the ConfigMap")
	dir := t.TempDir()
	corefilePath := filepath.Join(dir, "Corefile")
	kubelet := func() { // what the kubelet does for a mounted ConfigMap
		t.Helper()
		cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(corefilePath, []byte(cm.Data["Corefile"]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kubelet()
	coredns := c.RunTool(t, "coredns", "-conf", corefilePath)
	c.WaitFor(t, dnsSettle, "CoreDNS to serve the shadow service's name", func(ctx context.Context) (bool, error) {
		if coredns.Exited() {
			return false, fmt.Errorf("coredns exited: %s", coredns.Tail(20))
		}
		a, err := dnsQueryA(server, "web--test.nodemesh.svc.cluster.local.")
		return err == nil && len(a.ips) == 1 && a.ips[0] == webShadow, nil
	})
	if a := dnsMust(t, server, "web.test.mesh."); a.rcode != dnsmessage.RCodeNameError {
		t.Fatalf("before the patch web.test.mesh answered %v, want NXDOMAIN", a)
	}

	t.Log("nodemesh dns patch, with the aliases on")
	opts := dns.Options{Aliases: dns.KnownAliases}
	p, err := dns.NewPatcher(dns.PatcherOptions{Client: client, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	rules, err := p.ShadowRules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.SetExactRules(rules)
	began := time.Now()
	res, err := p.Patch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("patch took %s: %+v", time.Since(began).Round(time.Millisecond), res)
	if !res.Changed || res.RolledOut {
		t.Errorf("patch result %+v: want a change and no rollout (the Corefile has reload)", res)
	}
	reloadCoreDNS(t, kubelet, coredns)
	reloaded := time.Now()

	want := map[string]netip.Addr{
		"web.test.mesh.":         webShadow,
		"web.test.traefik.mesh.": webShadow,
		"web.test.maesh.":        webShadow,
		"api.team--a.mesh.":      apiShadow,
	}
	dnsWaitFor(t, server, "web.test.mesh.", func(a dnsAnswer) bool { return len(a.ips) > 0 })
	t.Logf("web.test.mesh resolves %s after the reload signal", time.Since(reloaded).Round(time.Millisecond))
	for name, ip := range want {
		a := dnsMust(t, server, name)
		if a.rcode != dnsmessage.RCodeSuccess || len(a.ips) != 1 || a.ips[0] != ip || a.names[0] != name {
			t.Errorf("%s answered %v; want %s under the name asked", name, a, ip)
		}
	}
	for _, name := range []string{"nope.test.mesh.", "x.web.test.mesh.", "mesh."} {
		if a := dnsMust(t, server, name); a.rcode != dnsmessage.RCodeNameError {
			t.Errorf("%s answered %v; want NXDOMAIN", name, a)
		}
	}

	t.Log("patching again writes nothing")
	if res, err := p.Patch(ctx); err != nil || res.Changed {
		t.Errorf("second patch: %+v, %v", res, err)
	}
	if bin := os.Getenv("NODEMESH_BIN"); bin != "" {
		out, err := exec.CommandContext(ctx, bin, "dns", "patch", "--kubeconfig="+c.Kubeconfig(), "--aliases=traefik.mesh,maesh").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "nothing written") {
			cm, _ := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
			t.Errorf("nodemesh dns patch on a patched cluster: %v\n%s\nnow:\n%s", err, out, cm.Data["Corefile"])
		}
		t.Logf("$NODEMESH_BIN dns patch: %s", strings.TrimSpace(string(out)))
	}

	t.Log("nodemesh dns restore")
	if _, err := p.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cm.Data, map[string]string{"Corefile": original}) || cm.BinaryData != nil {
		t.Errorf("restore left the ConfigMap data %q, want the original byte for byte", cm.Data)
	}
	reloadCoreDNS(t, kubelet, coredns)
	dnsWaitFor(t, server, "web.test.mesh.", func(a dnsAnswer) bool { return a.rcode == dnsmessage.RCodeNameError })
	for name := range want {
		if a := dnsMust(t, server, name); a.rcode != dnsmessage.RCodeNameError {
			t.Errorf("after restore %s answered %v; want NXDOMAIN", name, a)
		}
	}
	t.Logf("the upstream resolver saw %d queries", upstream.queries.Load())
}

// reloadCoreDNS writes the ConfigMap's Corefile where CoreDNS reads it and
// signals a reload. In a cluster the kubelet updates the mounted file within
// about a minute and the reload plugin notices within its interval (30s);
// SIGUSR1 is the same reload without the wait.
func reloadCoreDNS(t *testing.T, kubelet func(), p *harness.Process) {
	t.Helper()
	kubelet()
	if err := syscall.Kill(p.Pid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
}

// dnsMust queries once more if the first try times out (a reload swaps the
// listeners).
func dnsMust(t *testing.T, server, name string) dnsAnswer {
	t.Helper()
	a, err := dnsQueryA(server, name)
	if err != nil {
		a, err = dnsQueryA(server, name)
	}
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	return a
}

// dnsWaitFor polls name until ok holds, for at most dnsSettle.
func dnsWaitFor(t *testing.T, server, name string, ok func(dnsAnswer) bool) {
	t.Helper()
	deadline := time.Now().Add(dnsSettle)
	var last dnsAnswer
	var err error
	for time.Now().Before(deadline) {
		if last, err = dnsQueryA(server, name); err == nil && ok(last) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never answered as wanted within %s; last %+v, %v", name, dnsSettle, last, err)
}

// coreDNSDeploymentObject is kubeadm's CoreDNS Deployment, scaled to zero:
// the harness has no kubelet, and the test runs CoreDNS itself.
func coreDNSDeploymentObject() *appsv1.Deployment {
	labels := map[string]string{"k8s-app": "kube-dns"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: "kube-system", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:         "coredns",
						Image:        "registry.k8s.io/coredns/coredns:v1.13.1",
						Args:         []string{"-conf", "/etc/coredns/Corefile"},
						VolumeMounts: []corev1.VolumeMount{{Name: "config-volume", MountPath: "/etc/coredns", ReadOnly: true}},
					}},
					Volumes: []corev1.Volume{{Name: "config-volume", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: "coredns"},
						Items:                []corev1.KeyToPath{{Key: "Corefile", Path: "Corefile"}},
					}}}},
				},
			},
		},
	}
}

func shadowLabels(ns, name string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/managed-by": "nodemesh",
		"nodemesh.io/source-namespace": ns,
		"nodemesh.io/source-name":      name,
	}
}

type serviceCreator interface {
	Create(context.Context, *corev1.Service, metav1.CreateOptions) (*corev1.Service, error)
}

// dnsCreateService creates a ClusterIP service with one HTTP port and
// returns its ClusterIP.
func dnsCreateService(t *testing.T, services serviceCreator, name string, labels map[string]string) netip.Addr {
	t.Helper()
	svc, err := services.Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(7000)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil {
		t.Fatalf("service %s has ClusterIP %q", name, svc.Spec.ClusterIP)
	}
	return ip
}
