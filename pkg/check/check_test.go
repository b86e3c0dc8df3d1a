package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/nodemesh/nodemesh/pkg/controller"
	"github.com/nodemesh/nodemesh/pkg/controllerapi"
	"github.com/nodemesh/nodemesh/pkg/distribution"
	"github.com/nodemesh/nodemesh/pkg/dns"
	"github.com/nodemesh/nodemesh/pkg/shadow"
	"github.com/nodemesh/nodemesh/pkg/smidiscovery"
	"github.com/nodemesh/nodemesh/pkg/snapshot"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

var now = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

const corefile = `.:53 {
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa
    forward . /etc/resolv.conf
    reload
}
`

// world is a healthy mesh as the checks see it; cases break one thing.
type world struct {
	objects   []runtime.Object
	smi       bool
	ready     controller.Readiness
	nodes     controller.NodesStatus
	topo      topology.Topology
	errs      controller.ErrorsStatus
	apiDown   error
	ctrlDown  error
	date      time.Time
	corefile  string
	noShadows bool
}

func healthy(t *testing.T) *world {
	smi := smidiscovery.Result{Status: snapshot.SMIStatus{Split: "v1alpha4", Specs: "v1alpha4", Access: "v1alpha3"}, HTTPRouteGroups: true, TCPRoutes: true, UDPRoutes: true}
	w := &world{
		smi:  true,
		date: now,
		ready: controller.Readiness{Ready: true, Synced: true, TableVersion: 7, SMI: &smi,
			Leader: controller.LeaderStatus{Enabled: true, Identity: "ctrl-0", Leader: "ctrl-0", Leading: true}},
		nodes: controller.NodesStatus{TableVersion: 7, Nodes: []controller.NodeStatus{
			{NodeStatus: distribution.NodeStatus{Node: "node-a", AppliedVersion: 7, Ready: true, LastSeen: now.Add(-20 * time.Second), Connected: true}, UpToDate: true},
			{NodeStatus: distribution.NodeStatus{Node: "node-b", AppliedVersion: 7, Ready: true, LastSeen: now.Add(-time.Second), Connected: true}, UpToDate: true},
		}},
		topo: topology.Topology{
			Options: topology.Options{}.WithDefaults(),
			Services: []*topology.Service{{Namespace: "shop", Name: "web", ShadowName: "web--shop", MeshName: "web.shop.mesh",
				Ports: []*topology.ServicePort{{Port: 80, Protocol: shadow.KindHTTP}}}},
		},
		errs: controller.ErrorsStatus{Errors: []topology.ObjectError{}},
	}
	patched, err := dns.Patch(corefile, dns.Options{MeshNamespace: "nodemesh"})
	if err != nil {
		t.Fatal(err)
	}
	w.corefile = patched
	return w
}

func node(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
}

// getter serves the controller API from the world.
type getter struct{ w *world }

func (g getter) Where() string { return "fake" }

func (g getter) Get(_ context.Context, path string) ([]byte, int, error) {
	if g.w.ctrlDown != nil {
		return nil, 0, g.w.ctrlDown
	}
	var v any
	code := http.StatusOK
	switch path {
	case controller.PathReadiness:
		v = g.w.ready
		if !g.w.ready.Ready {
			code = http.StatusServiceUnavailable
		}
	case controller.PathNodes:
		v = g.w.nodes
	case controller.PathTopology:
		v = g.w.topo
	case controller.PathErrors:
		v = g.w.errs
	default:
		return nil, http.StatusNotFound, nil
	}
	b, err := json.Marshal(v)
	return b, code, err
}

func (w *world) options(t *testing.T) Options {
	objs := append([]runtime.Object{node("node-a"), node("node-b"),
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "nodemesh", Name: "nodemesh-controller"},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("ctrl-0"), LeaseDurationSeconds: ptr.To[int32](15), RenewTime: &metav1.MicroTime{Time: w.date.Add(-2 * time.Second)}}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "coredns"}, Data: map[string]string{"Corefile": w.corefile}},
		coreDNSDeployment(),
	}, w.objects...)
	if !w.noShadows {
		for _, s := range shadow.Desired(w.topo.ShadowSpecs()) {
			objs = append(objs, s)
		}
	}
	kube := fake.NewClientset(objs...)
	if w.smi {
		kube.Discovery().(*fakediscovery.FakeDiscovery).Resources = []*metav1.APIResourceList{
			{GroupVersion: "split.smi-spec.io/v1alpha4", APIResources: []metav1.APIResource{{Name: "trafficsplits"}}},
			{GroupVersion: "split.smi-spec.io/v1alpha3", APIResources: []metav1.APIResource{{Name: "trafficsplits"}}},
			{GroupVersion: "specs.smi-spec.io/v1alpha4", APIResources: []metav1.APIResource{{Name: "httproutegroups"}, {Name: "tcproutes"}, {Name: "udproutes"}}},
			{GroupVersion: "access.smi-spec.io/v1alpha3", APIResources: []metav1.APIResource{{Name: "traffictargets"}}},
		}
	}
	return Options{
		Kube: kube,
		Server: func(context.Context) (ServerInfo, error) {
			return ServerInfo{Version: "v1.37.2", Date: w.date, Sent: now, Received: now.Add(10 * time.Millisecond)}, w.apiDown
		},
		Controller:    controllerapi.New(getter{w}),
		MeshNamespace: "nodemesh",
		DNSNamespace:  "kube-system",
		ClusterDomain: "cluster.local",
		Now:           func() time.Time { return now },
	}
}

func coreDNSDeployment() *appsv1.Deployment {
	labels := map[string]string{"k8s-app": "kube-dns"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: "kube-system", Labels: labels},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "coredns", Image: "registry.k8s.io/coredns/coredns:v1.13.1", Args: []string{"-conf", "/etc/coredns/Corefile"},
					VolumeMounts: []corev1.VolumeMount{{Name: "config-volume", MountPath: "/etc/coredns"}}}},
				Volumes: []corev1.Volume{{Name: "config-volume", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "coredns"}, Items: []corev1.KeyToPath{{Key: "Corefile", Path: "Corefile"}}}}}},
			},
		}},
	}
}

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		// breaks the healthy world
		breakIt func(*world)
		// failing are the checks that must fail (all others pass), with a
		// word each must say.
		failing map[string]string
	}{
		{"healthy", func(*world) {}, nil},
		{"proxy stopped", func(w *world) {
			w.nodes.Nodes[0].Connected, w.nodes.Nodes[0].LastSeen = false, now.Add(-time.Minute)
		}, map[string]string{NameProxies: "node-a: proxy not connected (last seen 1m0s ago)"}},
		{"no proxy on a node", func(w *world) { w.nodes.Nodes = w.nodes.Nodes[:1] }, map[string]string{NameProxies: "node-b: no proxy heard from"}},
		{"stale table version", func(w *world) { w.nodes.Nodes[1].AppliedVersion = 6 },
			map[string]string{NameProxies: "node-b: proxy on table version 6, the controller serves 7"}},
		{"DNS patch removed", func(w *world) { w.corefile = corefile }, map[string]string{NameDNS: "lacks"}},
		{"CRDs deleted", func(w *world) { w.smi = false }, map[string]string{NameSMICRDs: "not served: routes specs.smi-spec.io"}},
		{"controller started before the CRDs", func(w *world) { w.ready.SMI = &smidiscovery.Result{} },
			map[string]string{NameSMICRDs: "discovered before the CRDs changed"}},
		{"controller unreachable", func(w *world) { w.ctrlDown = errors.New("connection refused") }, map[string]string{
			NameControllerReady: "connection refused", NameControllerLeader: "not checked", NameProxies: "not checked",
			NameShadows: "not checked", NamePortRanges: "not checked"}},
		{"controller not synced", func(w *world) { w.ready.Ready, w.ready.Synced = false, false },
			map[string]string{NameControllerReady: "not synced"}},
		{"leader unknown to the replica", func(w *world) { w.ready.Leader.Leader = "ctrl-1" },
			map[string]string{NameControllerLeader: "follows ctrl-1"}},
		{"shadow missing", func(w *world) { w.noShadows = true }, map[string]string{NameShadows: "shop/web: no shadow service web--shop"}},
		{"orphan shadow", func(w *world) {
			w.objects = append(w.objects, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "nodemesh", Name: "old--shop",
				Labels: map[string]string{shadow.LabelManagedBy: shadow.ManagedByValue, shadow.LabelSourceNamespace: "shop", shadow.LabelSourceName: "old"}}})
		}, map[string]string{NameShadows: "old--shop: shadow service of no mesh service"}},
		{"port range exhausted", func(w *world) {
			w.errs.Errors = []topology.ObjectError{{Kind: "Service", Namespace: "shop", Name: "db", Message: "port 5432/TCP: no free proxy port in TCP range 10000-10000; port not meshed"}}
		}, map[string]string{NamePortRanges: "shop/db: port 5432/TCP: no free proxy port"}},
		{"clock skew", func(w *world) { w.date = now.Add(2 * time.Minute) }, map[string]string{NameClockSkew: "2m0s off"}},
		{"apiserver unreachable", func(w *world) { w.apiDown = errors.New("dial tcp: connection refused") }, map[string]string{
			NameAPIServer: "unreachable", NameSMICRDs: "not checked", NameControllerLeader: "not checked", NameProxies: "not checked",
			NameDNS: "not checked", NameShadows: "not checked", NameClockSkew: "not checked"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := healthy(t)
			tc.breakIt(w)
			r := Run(t.Context(), w.options(t))
			if len(r.Checks) != 9 {
				t.Fatalf("%d checks, want 9", len(r.Checks))
			}
			for _, c := range r.Checks {
				want, shouldFail := tc.failing[c.Name]
				switch {
				case shouldFail && c.OK:
					t.Errorf("%s passed (%s), want a failure saying %q", c.Name, c.Message, want)
				case shouldFail && !strings.Contains(c.Message, want):
					t.Errorf("%s: %q, want it to say %q", c.Name, c.Message, want)
				case shouldFail && c.Fix == "":
					t.Errorf("%s failed without a fix", c.Name)
				case !shouldFail && !c.OK:
					t.Errorf("%s failed: %s", c.Name, c.Message)
				}
			}
			if r.OK != (len(tc.failing) == 0) {
				t.Errorf("report OK = %v with %d failures expected", r.OK, len(tc.failing))
			}
		})
	}
}

func TestLeaseExpiryJudgedOnTheServersClock(t *testing.T) {
	w := healthy(t)
	o := w.options(t)
	leases := o.Kube.CoordinationV1().Leases("nodemesh")
	l, err := leases.Get(t.Context(), "nodemesh-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l.Spec.RenewTime = &metav1.MicroTime{Time: now.Add(-time.Minute)}
	if _, err := leases.Update(t.Context(), l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	res := Run(t.Context(), o).Checks[3]
	if res.Name != NameControllerLeader || res.OK || !strings.Contains(res.Message, "stopped renewing") {
		t.Errorf("expired lease: %+v", res)
	}
	// Our clock is a minute behind the apiserver's but the lease was
	// renewed 2 s ago by the apiserver's clock: not expired.
	l.Spec.RenewTime = &metav1.MicroTime{Time: now.Add(time.Minute - 2*time.Second)}
	if _, err := leases.Update(t.Context(), l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.date = now.Add(time.Minute)
	o.MaxClockSkew = 2 * time.Minute
	if res := Run(t.Context(), o).Checks[3]; !res.OK {
		t.Errorf("fresh lease under clock skew: %+v", res)
	}
}

func TestWriteTextAndJSON(t *testing.T) {
	r := Report{OK: false, Checks: []Result{
		{Name: NameAPIServer, OK: true, Message: "reachable"},
		{Name: NameDNS, Message: "missing", Fix: "nodemesh dns patch"},
	}}
	var b bytes.Buffer
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	want := "✔ apiserver: reachable\n✘ dns: missing\n    fix: nodemesh dns patch\n1 of 2 checks failed\n"
	if b.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.OK || len(back.Checks) != 2 || back.Checks[1].Fix != "nodemesh dns patch" {
		t.Errorf("JSON round trip: %v %+v", err, back)
	}
}

// TestProxiesAcrossReplicas: each replica knows only the proxies polling
// it, with its own version numbers; a node is fine when any replica sees
// its proxy up to date.
func TestProxiesAcrossReplicas(t *testing.T) {
	w := healthy(t)
	// Replica 0 (the one reached) saw node-b a minute ago, before it moved.
	w.nodes.Nodes[1].Connected, w.nodes.Nodes[1].LastSeen, w.nodes.Nodes[1].AppliedVersion = false, now.Add(-time.Minute), 3
	other := healthy(t)
	other.nodes = controller.NodesStatus{TableVersion: 9, Nodes: []controller.NodeStatus{
		{NodeStatus: distribution.NodeStatus{Node: "node-b", AppliedVersion: 9, Ready: true, LastSeen: now, Connected: true}, UpToDate: true},
	}}
	o := w.options(t)
	o.Replicas = func(context.Context) ([]controllerapi.Replica, error) {
		return []controllerapi.Replica{{Pod: "ctrl-0", API: controllerapi.New(getter{w})}, {Pod: "ctrl-1", API: controllerapi.New(getter{other})}}, nil
	}
	if res := Run(t.Context(), o).Checks[4]; res.Name != NameProxies || !res.OK {
		t.Errorf("node-b up to date on the other replica: %+v", res)
	}
	other.nodes.Nodes[0].AppliedVersion = 8
	if res := Run(t.Context(), o).Checks[4]; res.OK || res.Message != "node-b: proxy on table version 8, the controller serves 9" {
		t.Errorf("node-b behind on the replica it polls: %+v", res)
	}
}
