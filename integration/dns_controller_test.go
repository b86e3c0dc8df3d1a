package integration_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nodemesh/nodemesh/integration/harness"
	"github.com/nodemesh/nodemesh/pkg/controller"
)

// TestControllerPatchesDNSAndRepairsDrift is issue 6 run by the controller
// (--patch-dns) on a real apiserver and the real CoreDNS: the leader adds
// the mesh domain to the coredns ConfigMap, with an exact rule for a service
// whose namespace holds "--", so both web.test.mesh and api.team--a.mesh
// resolve to their shadow services under the names asked. When a managed
// add-on (EKS's, say) puts its own Corefile back, the leader repairs it and
// says so with a DNSDrift Event on the ConfigMap.
func TestControllerPatchesDNSAndRepairsDrift(t *testing.T) {
	c := harness.Start(t)
	client := c.Client()
	ctx := t.Context()
	upstream := startFakeUpstream(t)

	dnsPort := freeLoopbackPort(t)
	server := fmt.Sprintf("127.0.0.1:%d", dnsPort)
	original := fmt.Sprintf(`.:%d {
    bind 127.0.0.1
    errors
    ready 127.0.0.1:%d
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       kubeconfig %s
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
    }
    forward . %s
    loop
    reload
}
`, dnsPort, freeLoopbackPort(t), c.Kubeconfig(), upstream.addr)

	t.Log("kube-system holds CoreDNS as kubeadm installs it; two services to mesh, one in a namespace holding \"--\"")
	if _, err := client.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: "kube-system"},
		Data:       map[string]string{"Corefile": original},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AppsV1().Deployments("kube-system").Create(ctx, coreDNSDeploymentObject(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createNamespaces(t, c, "test", "team--a", "nodemesh")
	for _, svc := range []struct{ ns, name string }{{"test", "web"}, {"team--a", "api"}} {
		createService(t, c, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: svc.ns, Name: svc.name},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": svc.name},
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		})
	}

	t.Log("the controller runs with --patch-dns")
	startController(t, c, func(cfg *controller.Config) { cfg.PatchDNS = true })
	corefile := func() string {
		cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return cm.Data["Corefile"]
	}
	const exactRule = "name exact api.team--a.mesh. api--team--a.nodemesh.svc.cluster.local."
	waitUntil(t, settle, "the leader to patch the Corefile with the exact rule", func() bool {
		return strings.Contains(corefile(), exactRule)
	})
	patched := corefile()
	if !strings.HasPrefix(patched, original) {
		t.Errorf("the patch changed the Corefile outside its region:\n%s", patched)
	}

	t.Log("the real CoreDNS runs the patched Corefile the kubelet would mount")
	corefilePath := filepath.Join(t.TempDir(), "Corefile")
	kubelet := func() {
		t.Helper()
		if err := os.WriteFile(corefilePath, []byte(corefile()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kubelet()
	coredns := c.RunTool(t, "coredns", "-conf", corefilePath)
	var web, api *corev1.Service
	waitUntil(t, settle, "the shadow services", func() bool {
		web, api = shadowOf(t, c, "web--test"), shadowOf(t, c, "api--team--a")
		return web != nil && api != nil
	})
	want := map[string]netip.Addr{
		"web.test.mesh.":    netip.MustParseAddr(web.Spec.ClusterIP),
		"api.team--a.mesh.": netip.MustParseAddr(api.Spec.ClusterIP),
	}
	c.WaitFor(t, dnsSettle, "CoreDNS to answer web.test.mesh", func(context.Context) (bool, error) {
		if coredns.Exited() {
			return false, fmt.Errorf("coredns exited: %s", coredns.Tail(20))
		}
		a, err := dnsQueryA(server, "web.test.mesh.")
		return err == nil && len(a.ips) == 1, nil
	})
	for name, ip := range want {
		a := dnsMust(t, server, name)
		if a.rcode != dnsmessage.RCodeSuccess || len(a.ips) != 1 || a.ips[0] != ip || a.names[0] != name {
			t.Errorf("%s answered %v; want %s under the name asked", name, a, ip)
		}
	}

	t.Log("a managed add-on puts its own Corefile back")
	cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	overwritten := time.Now()
	cm.Data["Corefile"] = original
	if _, err := client.CoreV1().ConfigMaps("kube-system").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, settle, "the leader to repair the Corefile", func() bool { return corefile() == patched })
	t.Logf("repaired %s after the overwrite", time.Since(overwritten).Round(time.Millisecond))
	waitUntil(t, settle, "a DNSDrift Event on the coredns ConfigMap", func() bool {
		events, err := client.CoreV1().Events("kube-system").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events.Items {
			if e.Reason == controller.ReasonDNSDrift && e.InvolvedObject.Kind == "ConfigMap" && e.InvolvedObject.Name == "coredns" {
				t.Logf("Event %s %s: %s", e.Type, e.Reason, e.Message)
				return true
			}
		}
		return false
	})
	reloadCoreDNS(t, kubelet, coredns)
	dnsWaitFor(t, server, "api.team--a.mesh.", func(a dnsAnswer) bool {
		return len(a.ips) == 1 && a.ips[0] == want["api.team--a.mesh."] && a.names[0] == "api.team--a.mesh."
	})
}
