package integration_test

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/nodemesh/nodemesh/integration/harness"
)

// The fixed values of the team conventions that the manifests must keep.
const (
	meshNamespace = "nodemesh"
	controllerURL = "http://nodemesh-controller.nodemesh.svc:9000"
	imageName     = "ghcr.io/nodemesh/nodemesh"
)

// proxyLabels are exactly what shadow services select.
var proxyLabels = map[string]string{"app.kubernetes.io/name": "nodemesh", "app.kubernetes.io/component": "proxy"}

// workload is a pod template with the name of the object holding it.
type workload struct {
	name     string
	template corev1.PodTemplateSpec
}

func workloads(objs []runtime.Object) []workload {
	var out []workload
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			out = append(out, workload{"Deployment/" + o.Name, o.Spec.Template})
		case *appsv1.DaemonSet:
			out = append(out, workload{"DaemonSet/" + o.Name, o.Spec.Template})
		}
	}
	return out
}

func find[T runtime.Object](objs []runtime.Object, name string) T {
	var zero T
	for _, o := range objs {
		if typed, ok := o.(T); ok {
			if m, ok := any(typed).(interface{ GetName() string }); ok && m.GetName() == name {
				return typed
			}
		}
	}
	return zero
}

func checkContracts(t *testing.T, objs []runtime.Object) {
	if ns := find[*corev1.Namespace](objs, meshNamespace); ns == nil {
		t.Errorf("no Namespace %s", meshNamespace)
	}
	proxy := find[*appsv1.DaemonSet](objs, "nodemesh-proxy")
	ctrl := find[*appsv1.Deployment](objs, "nodemesh-controller")
	svc := find[*corev1.Service](objs, "nodemesh-controller")
	if proxy == nil || ctrl == nil || svc == nil {
		t.Fatalf("missing: proxy DaemonSet %v, controller Deployment %v, controller Service %v", proxy != nil, ctrl != nil, svc != nil)
	}

	if !labels.Equals(proxy.Spec.Selector.MatchLabels, proxyLabels) {
		t.Errorf("proxy selector %v, want exactly %v", proxy.Spec.Selector.MatchLabels, proxyLabels)
	}
	for _, w := range workloads(objs) {
		sel := labels.SelectorFromSet(proxyLabels)
		isProxy := w.name == "DaemonSet/nodemesh-proxy"
		if sel.Matches(labels.Set(w.template.Labels)) != isProxy {
			t.Errorf("%s: shadow services would select its pods: %v (only the proxy's may match)", w.name, !isProxy)
		}
		if a := w.template.Annotations; a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] == "" {
			t.Errorf("%s: no prometheus.io scrape annotations", w.name)
		}
		for _, ctr := range w.template.Spec.Containers {
			if !strings.HasPrefix(ctr.Image, imageName+":") {
				t.Errorf("%s: image %q, want %s:<tag>", w.name, ctr.Image, imageName)
			}
		}
	}

	p := proxy.Spec.Template.Spec.Containers[0]
	wantArgs(t, "proxy", p.Args, "--controller-url="+controllerURL, "--http-port=7000", "--admin-port=7001", "--node=$(NODEMESH_NODE)")
	if i := slices.IndexFunc(p.Env, func(e corev1.EnvVar) bool { return e.Name == "NODEMESH_NODE" }); i < 0 ||
		p.Env[i].ValueFrom == nil || p.Env[i].ValueFrom.FieldRef == nil || p.Env[i].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Error("proxy: NODEMESH_NODE does not come from spec.nodeName")
	}
	wantProbe(t, "proxy readiness", p.ReadinessProbe, "/ready", p, 7001)
	wantProbe(t, "proxy liveness", p.LivenessProbe, "/live", p, 7001)
	if p.Resources.Requests.Cpu().IsZero() || p.Resources.Requests.Memory().IsZero() || p.Resources.Limits.Cpu().IsZero() || p.Resources.Limits.Memory().IsZero() {
		t.Errorf("proxy resources %+v: want cpu and memory requests and limits", p.Resources)
	}
	if ru := proxy.Spec.UpdateStrategy.RollingUpdate; proxy.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || ru == nil {
		t.Error("proxy: no rolling update")
	}

	if ctrl.Spec.Replicas == nil || *ctrl.Spec.Replicas != 2 {
		t.Errorf("controller replicas %v, want 2", ctrl.Spec.Replicas)
	}
	cc := ctrl.Spec.Template.Spec.Containers[0]
	wantArgs(t, "controller", cc.Args, "--leader-elect=true", "--api-port=9000", "--mesh-namespace="+meshNamespace)
	wantProbe(t, "controller readiness", cc.ReadinessProbe, "/ready", cc, 9000)
	wantProbe(t, "controller liveness", cc.LivenessProbe, "/live", cc, 9000)
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 9000 {
		t.Errorf("controller Service ports %+v, want 9000", svc.Spec.Ports)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(ctrl.Spec.Template.Labels)) {
		t.Error("controller Service does not select the controller pods")
	}
}

func wantArgs(t *testing.T, what string, args []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(args, w) {
			t.Errorf("%s args %v lack %s", what, args, w)
		}
	}
}

// wantProbe checks an HTTP probe's path and that its port is port.
func wantProbe(t *testing.T, what string, p *corev1.Probe, path string, ctr corev1.Container, port int32) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: no HTTP probe", what)
		return
	}
	got := p.HTTPGet.Port.IntVal
	for _, cp := range ctr.Ports {
		if cp.Name == p.HTTPGet.Port.StrVal && p.HTTPGet.Port.StrVal != "" {
			got = cp.ContainerPort
		}
	}
	if p.HTTPGet.Path != path || got != port {
		t.Errorf("%s: GET %s on port %d, want %s on %d", what, p.HTTPGet.Path, got, path, port)
	}
}

// checkFlags runs `nodemesh <role> --help` for each container and checks
// that every --flag of its args is one of the role's documented options.
func checkFlags(t *testing.T, objs []runtime.Object) {
	bin, err := nodemeshBin()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	for _, w := range workloads(objs) {
		for _, ctr := range w.template.Spec.Containers {
			if len(ctr.Args) == 0 {
				t.Errorf("%s: no subcommand in args", w.name)
				continue
			}
			help, err := exec.Command(bin, ctr.Args[0], "--help").CombinedOutput()
			if err != nil {
				t.Fatalf("nodemesh %s --help: %v\n%s", ctr.Args[0], err, help)
			}
			for _, a := range ctr.Args[1:] {
				name, _, _ := strings.Cut(a, "=")
				if !strings.HasPrefix(a, "--") || !strings.Contains(a, "=") {
					t.Errorf("%s: argument %q: write options as --name=value (one form for every option type)", w.name, a)
					continue
				}
				if !regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(name) + `\s`).Match(help) {
					t.Errorf("%s: %s is not an option of `nodemesh %s`", w.name, name, ctr.Args[0])
				}
			}
		}
	}
}

// checkPodMonitors checks that each PodMonitor in manifests selects the
// pods of exactly one workload and scrapes a port those pods name.
func checkPodMonitors(t *testing.T, manifests string, objs []runtime.Object) {
	t.Helper()
	var monitors int
	for _, doc := range splitDocs([]byte(manifests)) {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatal(err)
		}
		if u.GetKind() != "PodMonitor" {
			continue
		}
		monitors++
		match, _, _ := unstructured.NestedStringMap(u.Object, "spec", "selector", "matchLabels")
		endpoints, _, _ := unstructured.NestedSlice(u.Object, "spec", "podMetricsEndpoints")
		var selected []workload
		for _, w := range workloads(objs) {
			if len(match) > 0 && labels.SelectorFromSet(match).Matches(labels.Set(w.template.Labels)) {
				selected = append(selected, w)
			}
		}
		if len(selected) != 1 || u.GetNamespace() != meshNamespace {
			t.Errorf("PodMonitor %s/%s selects %d workloads, want 1 in %s", u.GetNamespace(), u.GetName(), len(selected), meshNamespace)
			continue
		}
		for _, e := range endpoints {
			port, _ := e.(map[string]any)["port"].(string)
			if !slices.ContainsFunc(selected[0].template.Spec.Containers, func(c corev1.Container) bool {
				return slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == port })
			}) {
				t.Errorf("PodMonitor %s scrapes port %q, which %s does not name", u.GetName(), port, selected[0].name)
			}
		}
	}
	if monitors != 2 {
		t.Errorf("%d PodMonitors, want 2 (proxy and controller)", monitors)
	}
}

// checkRBAC asks the apiserver what each ServiceAccount may do.
func checkRBAC(t *testing.T, c *harness.Cluster) {
	const ctrlSA = "system:serviceaccount:nodemesh:nodemesh-controller"
	const proxySA = "system:serviceaccount:nodemesh:nodemesh-proxy"
	cases := []struct {
		as   string
		args string
		want bool
	}{
		{ctrlSA, "list services -A", true},
		{ctrlSA, "watch endpointslices.discovery.k8s.io -A", true},
		{ctrlSA, "list pods -A", true},
		{ctrlSA, "watch nodes", true},
		{ctrlSA, "list trafficsplits.split.smi-spec.io -A", true},
		{ctrlSA, "watch udproutes.specs.smi-spec.io -A", true},
		{ctrlSA, "list traffictargets.access.smi-spec.io -A", true},
		{ctrlSA, "create services -n nodemesh", true},
		{ctrlSA, "delete services -n nodemesh", true},
		{ctrlSA, "update services -n nodemesh", true},
		{ctrlSA, "create events -n default", true},
		{ctrlSA, "list events -A", true}, // the dashboard's Events panel
		{ctrlSA, "update leases.coordination.k8s.io/nodemesh-controller -n nodemesh", true},
		{ctrlSA, "update configmaps/coredns -n kube-system", true},
		{ctrlSA, "watch configmaps/coredns -n kube-system", true}, // dns.Watcher, by name
		{ctrlSA, "update deployments.apps/coredns -n kube-system", true},
		{ctrlSA, "list deployments.apps -n kube-system", true},
		{ctrlSA, "create configmaps -n kube-system", true},
		{ctrlSA, "get servicecidrs.networking.k8s.io/kubernetes", true}, // --choose-cluster-ips
		// ... and nothing beyond.
		{ctrlSA, "create services -n default", false},
		{ctrlSA, "delete services -n default", false},
		{ctrlSA, "get secrets -n nodemesh", false},
		{ctrlSA, "update configmaps/kube-proxy -n kube-system", false},
		{ctrlSA, "watch configmaps -n kube-system", false},
		{ctrlSA, "update deployments.apps/metrics-server -n kube-system", false},
		{ctrlSA, "get secrets -n kube-system", false},
		{ctrlSA, "update leases.coordination.k8s.io/kube-scheduler -n kube-system", false},
		{ctrlSA, "create trafficsplits.split.smi-spec.io -n default", false},
		{ctrlSA, "delete pods -n default", false},
		{ctrlSA, "delete events -n default", false},
		{ctrlSA, "get services -n default", false},
		{ctrlSA, "patch services -n nodemesh", false},
		{ctrlSA, "list servicecidrs.networking.k8s.io", false},
		{ctrlSA, "get ipaddresses.networking.k8s.io/10.96.0.1", false},
		{proxySA, "list services -A", false},
		{proxySA, "get pods -n nodemesh", false},
		{proxySA, "get configmaps -n nodemesh", false},
	}
	for _, tc := range cases {
		out, _, err := kubectl(t, c, "", append([]string{"auth", "can-i", "--as=" + tc.as}, strings.Fields(tc.args)...)...)
		got := strings.TrimSpace(out) == "yes"
		if err != nil && got {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s can %s: %v, want %v", tc.as, tc.args, got, tc.want)
		}
	}
}
