package controller

import (
	"strings"
	"testing"

	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha2"
	splitv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha3"
	specsscheme "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/specs/clientset/versioned/scheme"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/pkg/topology"
)

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"defaults are valid", func(*Config) {}, ""},
		{"tcp default mode", func(c *Config) { c.DefaultMode = "tcp" }, ""},
		{"udp is no default mode", func(c *Config) { c.DefaultMode = "udp" }, "default-mode"},
		{"bad range", func(c *Config) { c.TCPPortRange = "10-5" }, "port range"},
		{"overlapping ranges", func(c *Config) { c.UDPPortRange = "10500-11000" }, "overlaps"},
		{"http port inside a range", func(c *Config) { c.ProxyHTTPPort = 10001 }, "inside a proxy port range"},
		{"no workers", func(c *Config) { c.Workers = 0 }, "workers"},
		{"lease timings out of order", func(c *Config) { c.RenewDeadline = c.LeaseDuration }, "lease-duration"},
		{"lease timings ignored without election", func(c *Config) { c.LeaderElect, c.RenewDeadline = false, c.LeaseDuration }, ""},
		{"zero qps", func(c *Config) { c.KubeQPS = 0 }, "kube-qps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			_, err := c.TopologyOptions()
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("err = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestAliasesOption(t *testing.T) {
	c := DefaultConfig()
	c.Aliases = true
	o, err := c.TopologyOptions()
	if err != nil || strings.Join(o.Aliases, ",") != "traefik.mesh,maesh" {
		t.Errorf("aliases = %v (%v)", o.Aliases, err)
	}
}

func TestNamespaceFilter(t *testing.T) {
	tests := []struct {
		name             string
		watch, ignore    []string
		allowed, refused []string
		informers        string
		// fieldSelector is what the first informer namespace, if any, lists with.
		fieldSelector string
	}{
		{"all but the always ignored", nil, nil, []string{"default", "team-a"}, []string{"kube-system", "nodemesh"}, "",
			"metadata.namespace!=kube-system,metadata.namespace!=nodemesh"},
		{"ignore list", nil, []string{"legacy", "kube-system"}, []string{"default"}, []string{"legacy", "kube-system"}, "",
			"metadata.namespace!=kube-system,metadata.namespace!=legacy,metadata.namespace!=nodemesh"},
		{"watch list", []string{"b", "a", "a"}, nil, []string{"a", "b"}, []string{"default", "c"}, "a,b", ""},
		{"ignore beats watch", []string{"a", "kube-system", "nodemesh"}, []string{"a"}, nil, []string{"a", "kube-system", "nodemesh"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.WatchNamespaces, c.IgnoreNamespaces = tt.watch, tt.ignore
			f := newNamespaceFilter(c)
			for _, ns := range tt.allowed {
				if !f.allows(ns) {
					t.Errorf("%s refused", ns)
				}
			}
			for _, ns := range tt.refused {
				if f.allows(ns) {
					t.Errorf("%s allowed", ns)
				}
			}
			namespaces := f.informerNamespaces()
			if got := strings.Join(namespaces, ","); got != tt.informers {
				t.Errorf("informer namespaces = %q, want %q", got, tt.informers)
			}
			var o metav1.ListOptions
			if len(namespaces) > 0 {
				f.listOptions(namespaces[0])(&o)
			}
			if o.FieldSelector != tt.fieldSelector {
				t.Errorf("field selector = %q, want %q", o.FieldSelector, tt.fieldSelector)
			}
		})
	}
}

func TestSplitConversion(t *testing.T) {
	meta := metav1.ObjectMeta{Namespace: "ns", Name: "canary", UID: "u1"}
	v3 := &splitv1alpha3.TrafficSplit{ObjectMeta: meta, Spec: splitv1alpha3.TrafficSplitSpec{
		Service:  "web",
		Backends: []splitv1alpha3.TrafficSplitBackend{{Service: "web-v1", Weight: 80}, {Service: "web-v2", Weight: 20}},
		Matches:  []corev1.TypedLocalObjectReference{{Kind: "HTTPRouteGroup", Name: "ab"}},
	}}
	got := splitFromV1alpha3(v3)
	if got.UID != "u1" || got.Spec.Service != "web" || len(got.Spec.Backends) != 2 || got.Spec.Backends[1].Weight != 20 ||
		len(got.Spec.Matches) != 1 || got.APIVersion != "split.smi-spec.io/v1alpha4" {
		t.Errorf("v1alpha3 -> %+v", got)
	}
	v2 := &splitv1alpha2.TrafficSplit{ObjectMeta: meta, Spec: splitv1alpha2.TrafficSplitSpec{
		Service: "web", Backends: []splitv1alpha2.TrafficSplitBackend{{Service: "web-v1", Weight: 1}},
	}}
	if got := splitFromV1alpha2(v2); got.Spec.Service != "web" || len(got.Spec.Backends) != 1 || got.Spec.Backends[0].Service != "web-v1" || got.Spec.Matches != nil {
		t.Errorf("v1alpha2 -> %+v", got)
	}
}

func TestRelevantUpdate(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", ResourceVersion: "1"},
		Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}}}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1"},
	}
	conditionsOnly := pod.DeepCopy()
	conditionsOnly.ResourceVersion = "2"
	conditionsOnly.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady}}
	newIP := pod.DeepCopy()
	newIP.Status.PodIP = "10.0.0.2"
	renamedPort := pod.DeepCopy()
	renamedPort.Spec.Containers[0].Ports[0].Name = "web"
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", ResourceVersion: "1"}}
	heartbeat := node.DeepCopy()
	heartbeat.ResourceVersion = "2"
	rezoned := heartbeat.DeepCopy()
	rezoned.Labels = map[string]string{"topology.kubernetes.io/zone": "z2"}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "7"}}
	edited := svc.DeepCopy()
	edited.ResourceVersion = "8"

	deleting := conditionsOnly.DeepCopy()
	deleting.DeletionTimestamp = &metav1.Time{}
	cached := func(p *corev1.Pod) any { // what the Pod informer's handlers get
		o, err := transform(p)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}

	for _, tt := range []struct {
		name     string
		old, cur any
		want     bool
	}{
		{"pod conditions only", cached(pod), cached(conditionsOnly), false},
		{"pod IP", cached(pod), cached(newIP), true},
		{"pod port name", cached(pod), cached(renamedPort), true},
		{"pod deletion", cached(conditionsOnly), cached(deleting), true},
		{"node heartbeat", node, heartbeat, false},
		{"node zone", node, rezoned, true},
		{"service resync", svc, svc, false},
		{"service edit", svc, edited, true},
	} {
		if got := relevantUpdate(tt.old, tt.cur); got != tt.want {
			t.Errorf("%s: relevantUpdate = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestReasonFor(t *testing.T) {
	for msg, want := range map[string]string{
		"not meshable: ExternalName service":                                        "NotMeshable",
		"port 53/UDP: no free proxy port in UDP range 11000-11000; port not meshed": "ProxyPortsExhausted",
		`annotation nodemesh.io/retry-attempts="x": not a number`:                   "InvalidAnnotation",
		"nested splits form a cycle (a -> b -> a); split ignored":                   "InvalidTrafficSplit",
	} {
		kind := topology.KindService
		if want == "InvalidTrafficSplit" {
			kind = topology.KindTrafficSplit
		}
		if got := reasonFor(topology.ObjectError{Kind: kind, Message: msg}); got != want {
			t.Errorf("reasonFor(%q) = %s, want %s", msg, got, want)
		}
	}
}

// TestUDPRouteIsDecodable: the specs clientset must decode a UDPRoute
// watch event (smi-sdk-go v0.5.0 leaves the kind out of its scheme).
func TestUDPRouteIsDecodable(t *testing.T) {
	event := []byte(`{"apiVersion":"specs.smi-spec.io/v1alpha4","kind":"UDPRoute","metadata":{"name":"dns","namespace":"ns"},"spec":{"matches":{"name":"m","ports":[53]}}}`)
	obj, _, err := specsscheme.Codecs.UniversalDeserializer().Decode(event, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := obj.(*specsv1alpha4.UDPRoute); !ok || r.Name != "dns" {
		t.Fatalf("decoded %T %+v", obj, obj)
	}
}
