package controller

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	accessfake "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/access/clientset/versioned/fake"
	specsfake "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/specs/clientset/versioned/fake"
	splitfake "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/split/clientset/versioned/fake"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/nodemesh/nodemesh/pkg/dns"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

func TestExactRulesAreTheServicesTheGenericRulesGetWrong(t *testing.T) {
	topo := &topology.Topology{Services: []*topology.Service{
		{Namespace: "shop", Name: "web", ShadowName: "web--shop"},
		{Namespace: "team--a", Name: "api", ShadowName: "api--team--a"},
		{Namespace: "shop", Name: "long", ShadowName: "long--shop-0123456789"},
	}}
	want := []dns.ExactRule{
		{Service: types.NamespacedName{Namespace: "shop", Name: "long"}, Shadow: "long--shop-0123456789"},
		{Service: types.NamespacedName{Namespace: "team--a", Name: "api"}, Shadow: "api--team--a"},
	}
	if got := exactRules(topo); !equalRules(got, want) {
		t.Errorf("exactRules = %+v, want %+v", got, want)
	}
}

func equalRules(a, b []dns.ExactRule) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// corefile is kubeadm's Corefile, cut down to what the patch reads.
const corefile = `.:53 {
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
    }
    forward . /etc/resolv.conf
    reload
}
`

func coreDNSObjects() (*appsv1.Deployment, *corev1.ConfigMap) {
	labels := map[string]string{"k8s-app": "kube-dns"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: "kube-system", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name: "coredns", Image: "registry.k8s.io/coredns/coredns:v1.13.1",
						Args:         []string{"-conf", "/etc/coredns/Corefile"},
						VolumeMounts: []corev1.VolumeMount{{Name: "config-volume", MountPath: "/etc/coredns"}},
					}},
					Volumes: []corev1.Volume{{Name: "config-volume", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: "coredns"},
					}}}},
				},
			},
		},
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: "kube-system"}, Data: map[string]string{"Corefile": corefile}}
	return d, cm
}

// TestPatchDNSKeepsTheRulesWhileLeading: with PatchDNS the leader patches
// CoreDNS with an exact rule for a service in a namespace holding "--",
// repairs an overwrite with a DNSDrift Event on the ConfigMap, and reports
// both in /api/status/dns.
func TestPatchDNSKeepsTheRulesWhileLeading(t *testing.T) {
	deploy, cm := coreDNSObjects()
	kube := fake.NewSimpleClientset(deploy, cm,
		service("team--a", "api", nil, corev1.ServicePort{Name: "http", Port: 80}))
	cfg := testConfig()
	cfg.PatchDNS = true
	opts, err := cfg.TopologyOptions()
	if err != nil {
		t.Fatal(err)
	}
	c := newWithClients(cfg, opts, clients{kube: kube, split: splitfake.NewSimpleClientset(), specs: specsfake.NewSimpleClientset(), access: accessfake.NewSimpleClientset()})
	if c.dns, err = newDNSKeeper(cfg, kube, c.events.recorder); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	corefileNow := func() string {
		got, err := kube.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return got.Data["Corefile"]
	}
	const exact = "name exact api.team--a.mesh. api--team--a.nodemesh.svc.cluster.local."
	waitFor(t, "the patch with the exact rule", func() bool { return strings.Contains(corefileNow(), exact) })

	t.Log("a managed add-on puts its Corefile back")
	cm.Data["Corefile"] = corefile
	if _, err := kube.CoreV1().ConfigMaps("kube-system").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the repair", func() bool { return strings.Contains(corefileNow(), exact) })
	waitFor(t, "a DNSDrift Event on the ConfigMap", func() bool {
		events, err := kube.CoreV1().Events("kube-system").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events.Items {
			if e.Reason == ReasonDNSDrift && e.InvolvedObject.Kind == "ConfigMap" && e.InvolvedObject.Name == "coredns" && e.Type == corev1.EventTypeWarning {
				return true
			}
		}
		return false
	})

	rec := httptest.NewRecorder()
	c.Handler().ServeHTTP(rec, httptest.NewRequest("GET", PathDNS, nil))
	var st DNSStatus
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Enabled || !st.Running || st.ExactRules != 1 || st.Watcher == nil || !st.Watcher.Patched || st.Watcher.Drifts != 1 {
		t.Errorf("%s = %s", PathDNS, rec.Body)
	}
	if r := c.Readiness(); r.DNS == nil || r.DNS.Watcher == nil || r.DNS.Watcher.Drifts != 1 {
		t.Errorf("readiness DNS = %+v", r.DNS)
	}
}

func TestDNSStatusWhenOff(t *testing.T) {
	c, _ := start(t, fake.NewSimpleClientset())
	rec := httptest.NewRecorder()
	c.Handler().ServeHTTP(rec, httptest.NewRequest("GET", PathDNS, nil))
	if got := strings.TrimSpace(rec.Body.String()); got != `{"enabled":false,"running":false,"exactRules":0}` {
		t.Errorf("%s = %s", PathDNS, got)
	}
	if c.Readiness().DNS != nil {
		t.Errorf("readiness reports DNS with --patch-dns off")
	}
}
