package dns

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

const ns = "kube-system"

// coreDNSDeployment is shaped like kubeadm's: label k8s-app=kube-dns,
// -conf into a ConfigMap volume with an items list.
func coreDNSDeployment(name string, labels map[string]string, extraVolumes ...corev1.Volume) *appsv1.Deployment {
	vols := append([]corev1.Volume{{
		Name: "config-volume",
		VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "coredns"},
			Items:                []corev1.KeyToPath{{Key: "Corefile", Path: "Corefile"}},
		}},
	}}, extraVolumes...)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:         "coredns",
				Image:        "registry.k8s.io/coredns/coredns:v1.11.1",
				Args:         []string{"-conf", "/etc/coredns/Corefile"},
				VolumeMounts: []corev1.VolumeMount{{Name: "config-volume", MountPath: "/etc/coredns", ReadOnly: true}},
			}},
			Volumes: vols,
		}}},
	}
}

func configMap(name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: data}
}

// writes counts create and update calls.
func writes(c *fake.Clientset) []string {
	var out []string
	for _, a := range c.Actions() {
		if a.GetVerb() == "create" || a.GetVerb() == "update" {
			out = append(out, a.GetVerb()+" "+a.GetResource().Resource)
		}
	}
	return out
}

func newPatcher(t *testing.T, c *fake.Clientset, o Options, stubIP string) *Patcher {
	t.Helper()
	p, err := NewPatcher(PatcherOptions{Client: c, Options: o, KubeDNSStubIP: stubIP,
		Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func getCM(t *testing.T, c *fake.Clientset, name string) *corev1.ConfigMap {
	t.Helper()
	cm, err := c.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

func templateAnnotations(t *testing.T, c *fake.Clientset, name string) map[string]string {
	t.Helper()
	d, err := c.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Annotations
}

// TestPatcherCoreDNSLifecycle walks patch, idempotent patch, drift,
// repair and restore on a kubeadm-like CoreDNS with the reload plugin.
func TestPatcherCoreDNSLifecycle(t *testing.T) {
	ctx := context.Background()
	original := readTestdata(t, "coredns-1.11.in.Corefile")
	c := fake.NewSimpleClientset(
		coreDNSDeployment("coredns", map[string]string{"k8s-app": "kube-dns"}),
		configMap("coredns", map[string]string{"Corefile": original}),
	)
	p := newPatcher(t, c, Options{}, "")

	res, err := p.Patch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.WasPatched || res.RolledOut || res.Provider != CoreDNS {
		t.Errorf("first patch: %+v; want changed, not rolled out (reload is on)", res)
	}
	want, _ := Patch(original, Options{})
	if got := getCM(t, c, "coredns").Data["Corefile"]; got != want {
		t.Errorf("ConfigMap holds:\n%s\nwant:\n%s", got, want)
	}
	if w := writes(c); len(w) != 1 || w[0] != "update configmaps" {
		t.Errorf("writes = %v, want one ConfigMap update", w)
	}

	c.ClearActions()
	if res, err := p.Patch(ctx); err != nil || res.Changed {
		t.Errorf("second patch: %+v, %v; want no change", res, err)
	}
	if drift, err := p.Check(ctx); err != nil || drift {
		t.Errorf("Check = %v, %v; want no drift", drift, err)
	}
	if w := writes(c); len(w) != 0 {
		t.Errorf("an identical patch wrote %v", w)
	}

	// A managed add-on puts its own Corefile back.
	cm := getCM(t, c, "coredns")
	cm.Data["Corefile"] = original
	if _, err := c.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if drift, err := p.Check(ctx); err != nil || !drift {
		t.Errorf("Check after the overwrite = %v, %v; want drift", drift, err)
	}
	if res, err := p.Reconcile(ctx); err != nil || !res.Changed {
		t.Errorf("Reconcile = %+v, %v; want a repair", res, err)
	}
	if got := getCM(t, c, "coredns").Data["Corefile"]; got != want {
		t.Errorf("not repaired:\n%s", got)
	}

	res, err = p.Restore(ctx)
	if err != nil || !res.Changed || !res.WasPatched {
		t.Errorf("Restore = %+v, %v", res, err)
	}
	if got := getCM(t, c, "coredns").Data["Corefile"]; got != original {
		t.Errorf("restore left:\n%q\nwant:\n%q", got, original)
	}
	if ann := templateAnnotations(t, c, "coredns"); len(ann) != 0 {
		t.Errorf("pod template annotations %v, want none", ann)
	}
}

// TestPatcherRolloutWithoutReload restarts CoreDNS through the pod template
// only when it has no reload plugin, and only on a real change.
func TestPatcherRolloutWithoutReload(t *testing.T) {
	ctx := context.Background()
	original := strings.Replace(readTestdata(t, "coredns-1.7.in.Corefile"), "    reload\n", "", 1)
	c := fake.NewSimpleClientset(
		coreDNSDeployment("coredns", map[string]string{"kubernetes.io/name": "CoreDNS"}),
		configMap("coredns", map[string]string{"Corefile": original}),
	)
	p := newPatcher(t, c, Options{}, "")
	res, err := p.Patch(ctx)
	if err != nil || !res.RolledOut {
		t.Fatalf("Patch = %+v, %v; want a rollout", res, err)
	}
	hash := templateAnnotations(t, c, "coredns")[ConfigHashAnnotation]
	if len(hash) != 16 {
		t.Errorf("annotation %s = %q", ConfigHashAnnotation, hash)
	}
	c.ClearActions()
	if res, err := p.Patch(ctx); err != nil || res.Changed || res.RolledOut || len(writes(c)) != 0 {
		t.Errorf("second patch = %+v, %v, writes %v; want nothing", res, err, writes(c))
	}
	p.SetExactRules([]ExactRule{{Service: types.NamespacedName{Namespace: "ns", Name: "svc"}, Shadow: "svc-0123456789"}})
	if res, err := p.Patch(ctx); err != nil || !res.RolledOut {
		t.Errorf("patch with a new rule = %+v, %v; want a rollout", res, err)
	}
	if h := templateAnnotations(t, c, "coredns")[ConfigHashAnnotation]; h == hash {
		t.Errorf("the hash did not change with the Corefile")
	}
	if res, err := p.Restore(ctx); err != nil || !res.RolledOut {
		t.Errorf("Restore = %+v, %v; want a rollout", res, err)
	}
	if ann := templateAnnotations(t, c, "coredns"); len(ann) != 0 {
		t.Errorf("restore left pod template annotations %v", ann)
	}
	if got := getCM(t, c, "coredns").Data["Corefile"]; got != original {
		t.Errorf("restore left:\n%s", got)
	}
}

// TestPatcherAKSCustom writes the coredns-custom key and never the main
// Corefile, which AKS manages.
func TestPatcherAKSCustom(t *testing.T) {
	ctx := context.Background()
	optional := true
	custom := corev1.Volume{Name: "custom-config-volume", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: CustomConfigMap}, Optional: &optional,
	}}}
	mainCorefile := readTestdata(t, "aks-main.in.Corefile")
	userKey := "example.server"
	userServer := "example.org:53 {\n    forward . 10.0.0.2\n}\n"
	c := fake.NewSimpleClientset(
		coreDNSDeployment("coredns", map[string]string{"k8s-app": "kube-dns"}, custom),
		configMap("coredns", map[string]string{"Corefile": mainCorefile}),
		configMap(CustomConfigMap, map[string]string{userKey: userServer}),
	)
	p := newPatcher(t, c, Options{Aliases: []string{"traefik.mesh"}}, "")
	if res, err := p.Patch(ctx); err != nil || !res.Changed || res.RolledOut {
		t.Fatalf("Patch = %+v, %v", res, err)
	}
	if got := getCM(t, c, "coredns").Data["Corefile"]; got != mainCorefile {
		t.Errorf("the main Corefile changed:\n%s", got)
	}
	got := getCM(t, c, CustomConfigMap).Data
	golden(t, "aks-custom.patched.Corefile", got[CustomKey])
	if got[userKey] != userServer {
		t.Errorf("the user's key changed: %q", got[userKey])
	}
	if res, err := p.Patch(ctx); err != nil || res.Changed {
		t.Errorf("second patch = %+v, %v", res, err)
	}
	if _, err := p.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	got = getCM(t, c, CustomConfigMap).Data
	if _, ok := got[CustomKey]; ok || got[userKey] != userServer || len(got) != 1 {
		t.Errorf("restore left %v", got)
	}

	// Without the import the blocks would never load: refuse.
	cm := getCM(t, c, "coredns")
	cm.Data["Corefile"] = strings.Replace(mainCorefile, "import custom/*.server\n", "", 1)
	if _, err := c.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Patch(ctx); err == nil || !strings.Contains(err.Error(), "imports no file") {
		t.Errorf("Patch without the import: %v", err)
	}
}

// TestPatcherErrors names what was looked for and writes nothing.
func TestPatcherErrors(t *testing.T) {
	tests := []struct {
		name    string
		objects []runtime.Object
		stubIP  string
		want    string
	}{
		{name: "no deployment", want: "looked for the labels k8s-app=kube-dns and kubernetes.io/name=CoreDNS, then the names coredns and kube-dns"},
		{name: "no configmap", objects: []runtime.Object{coreDNSDeployment("coredns", nil)}, want: "ConfigMap kube-system/coredns (the Corefile of Deployment kube-system/coredns) not found"},
		{name: "no Corefile key", objects: []runtime.Object{coreDNSDeployment("coredns", nil), configMap("coredns", map[string]string{"other": ""})}, want: "has no key \"Corefile\""},
		{name: "unparseable", objects: []runtime.Object{coreDNSDeployment("coredns", nil), configMap("coredns", map[string]string{"Corefile": ".:53 {\n    kubernetes cluster.local {\n}\n"})}, want: "corefile left untouched"},
		{name: "two candidates", objects: []runtime.Object{
			coreDNSDeployment("dns-a", map[string]string{"k8s-app": "kube-dns"}),
			coreDNSDeployment("dns-b", map[string]string{"kubernetes.io/name": "CoreDNS"}),
		}, want: "several DNS Deployments in kube-system (dns-a, dns-b)"},
		{name: "kube-dns without stub IP", objects: []runtime.Object{kubeDNSDeployment()}, want: "set the kube-dns stub IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewSimpleClientset(tt.objects...)
			p := newPatcher(t, c, Options{}, tt.stubIP)
			_, err := p.Patch(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Patch error = %v, want one saying %q", err, tt.want)
			}
			if w := writes(c); len(w) != 0 {
				t.Errorf("wrote %v", w)
			}
		})
	}
}

func kubeDNSDeployment() *appsv1.Deployment {
	optional := true
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: ns, Labels: map[string]string{"k8s-app": "kube-dns"}},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "kubedns", Image: "registry.k8s.io/dns/k8s-dns-kube-dns:1.22.28"}},
			Volumes: []corev1.Volume{{Name: "kube-dns-config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "kube-dns"}, Optional: &optional,
			}}}},
		}}},
	}
}

// TestPatcherKubeDNS adds and removes only nodemesh's stubDomains entries.
func TestPatcherKubeDNS(t *testing.T) {
	ctx := context.Background()
	user := `{"corp.example": ["10.1.0.53"]}`
	c := fake.NewSimpleClientset(kubeDNSDeployment(), configMap("kube-dns", map[string]string{"stubDomains": user}))
	p := newPatcher(t, c, Options{Aliases: []string{"traefik.mesh"}}, "10.96.0.53")
	if res, err := p.Patch(ctx); err != nil || !res.Changed || res.Provider != KubeDNS || res.RolledOut {
		t.Fatalf("Patch = %+v, %v", res, err)
	}
	cm := getCM(t, c, "kube-dns")
	if got, want := cm.Data["stubDomains"], `{"corp.example":["10.1.0.53"],"mesh":["10.96.0.53"],"traefik.mesh":["10.96.0.53"]}`; got != want {
		t.Errorf("stubDomains = %s, want %s", got, want)
	}
	if got := cm.Annotations[StubDomainsAnnotation]; got != "mesh,traefik.mesh" {
		t.Errorf("annotation = %q", got)
	}
	c.ClearActions()
	if res, err := p.Patch(ctx); err != nil || res.Changed || len(writes(c)) != 0 {
		t.Errorf("second patch = %+v, %v", res, err)
	}
	if _, err := p.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	cm = getCM(t, c, "kube-dns")
	if got := cm.Data["stubDomains"]; got != `{"corp.example":["10.1.0.53"]}` {
		t.Errorf("restore left stubDomains %s", got)
	}
	if _, ok := cm.Annotations[StubDomainsAnnotation]; ok {
		t.Errorf("restore left the annotation")
	}

	// A user's own "mesh" entry is never overwritten.
	cm.Data["stubDomains"] = `{"mesh":["10.9.9.9"]}`
	if _, err := c.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Patch(ctx); err == nil || !strings.Contains(err.Error(), "nodemesh did not add") {
		t.Errorf("Patch over a user's entry: %v", err)
	}
}

// TestPatcherKubeDNSCreatesConfigMap creates kube-dns's optional ConfigMap
// when it is missing.
func TestPatcherKubeDNSCreatesConfigMap(t *testing.T) {
	c := fake.NewSimpleClientset(kubeDNSDeployment())
	p := newPatcher(t, c, Options{}, "10.96.0.53")
	if _, err := p.Patch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := getCM(t, c, "kube-dns").Data["stubDomains"]; got != `{"mesh":["10.96.0.53"]}` {
		t.Errorf("stubDomains = %s", got)
	}
	if _, err := p.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := getCM(t, c, "kube-dns").Data["stubDomains"]; ok {
		t.Errorf("restore left stubDomains")
	}
}

// TestSetExactRulesKeepsGoodRules drops only the bad rule.
func TestSetExactRulesKeepsGoodRules(t *testing.T) {
	c := fake.NewSimpleClientset(
		coreDNSDeployment("coredns", nil),
		configMap("coredns", map[string]string{"Corefile": readTestdata(t, "coredns-1.11.in.Corefile")}),
	)
	p := newPatcher(t, c, Options{}, "")
	errs := p.SetExactRules([]ExactRule{
		{Service: types.NamespacedName{Namespace: "b", Name: "ok"}, Shadow: "ok-0123456789"},
		{Service: types.NamespacedName{Namespace: "a", Name: "Bad_Name"}, Shadow: "x"},
		{Service: types.NamespacedName{Namespace: "b", Name: "ok"}, Shadow: "other"},
	})
	if len(errs) != 2 {
		t.Errorf("errors = %v, want two", errs)
	}
	if _, err := p.Patch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := getCM(t, c, "coredns").Data["Corefile"]; !strings.Contains(got, "rewrite stop name exact ok.b.mesh. ok-0123456789.nodemesh.svc.cluster.local.") {
		t.Errorf("the good rule is missing:\n%s", got)
	}
}

// TestShadowRules reads exact rules back from the shadow services' labels.
func TestShadowRules(t *testing.T) {
	shadow := func(name, srcNS, srcName string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "nodemesh", Labels: map[string]string{
			"app.kubernetes.io/managed-by": "nodemesh", "nodemesh.io/source-namespace": srcNS, "nodemesh.io/source-name": srcName,
		}}}
	}
	unrelated := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "controller", Namespace: "nodemesh"}}
	c := fake.NewSimpleClientset(
		shadow("web--test", "test", "web"),
		shadow("api--team--a", "team--a", "api"),
		shadow("long-name-0123456789", "some-namespace", "long-name"),
		unrelated,
	)
	p := newPatcher(t, c, Options{}, "")
	rules, err := p.ShadowRules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	clean, _ := cleanRules(rules)
	want := []ExactRule{
		{Service: types.NamespacedName{Namespace: "some-namespace", Name: "long-name"}, Shadow: "long-name-0123456789"},
		{Service: types.NamespacedName{Namespace: "team--a", Name: "api"}, Shadow: "api--team--a"},
	}
	if len(clean) != len(want) || clean[0] != want[0] || clean[1] != want[1] {
		t.Errorf("rules = %v, want %v", clean, want)
	}
}
