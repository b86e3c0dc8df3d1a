package controller

import (
	"context"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/nodemesh/nodemesh/pkg/smidiscovery"
	"github.com/nodemesh/nodemesh/pkg/snapshot"
)

// TestPodInformerServesCompactPods: with the transform, the Pod informer
// caches *snapshot.Pod, listPods lists them into the snapshot, and the event
// handlers get them too (the namespace filter included).
func TestPodInformerServesCompactPods(t *testing.T) {
	pod := func(ns, name, ip string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Annotations: map[string]string{"a": "b"}},
			Spec: corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "app", Image: "img",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip},
		}
	}
	kube := fake.NewClientset(pod("shop", "web-0", "10.0.0.1"), pod("shop", "pending", ""), pod("kube-system", "dns-0", "10.0.0.9"))

	var mu sync.Mutex
	events := map[string][]any{}
	record := func(what string, obj any) {
		mu.Lock()
		defer mu.Unlock()
		events[what] = append(events[what], obj)
	}
	src := newSources(clients{kube: kube}, testConfig(), smidiscovery.Result{}, func(kind string) cache.ResourceEventHandler {
		if kind != "Pod" {
			return cache.ResourceEventHandlerFuncs{}
		}
		return cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { record("add", o) },
			UpdateFunc: func(_, o any) { record("update", o) },
			DeleteFunc: func(o any) { record("delete", o) },
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src.start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), src.synced...) {
		t.Fatal("caches did not sync")
	}

	snap, err := src.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Pods) != 1 { // not the IP-less pod, not kube-system's
		t.Fatalf("snapshot pods: %+v", snap.Pods)
	}
	want := snapshot.Pod{Namespace: "shop", Name: "web-0", UID: "uid-web-0", ServiceAccount: "", Node: "node-a", Workload: "Pod/web-0",
		Phase: corev1.PodRunning, IPs: []string{"10.0.0.1"}, Ports: []snapshot.NamedPort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 8080}}}
	if got := snap.Pods[0]; !got.Equal(&want) {
		t.Errorf("snapshot pod = %+v, want %+v", got, want)
	}

	if err := kube.CoreV1().Pods("shop").Delete(ctx, "web-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the delete event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events["delete"]) == 1
	})
	mu.Lock()
	defer mu.Unlock()
	if len(events["add"]) != 2 { // the shop pods only
		t.Errorf("add events: %d, want 2", len(events["add"]))
	}
	for what, objs := range events {
		for _, o := range objs {
			if p, ok := o.(*snapshot.Pod); !ok || p.Namespace != "shop" {
				t.Errorf("%s event with %T %+v", what, o, o)
			}
		}
	}
}

// TestTransformTrims: what each kind keeps in the cache, and that a second
// pass changes nothing.
func TestTransformTrims(t *testing.T) {
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "u1", ResourceVersion: "7", ManagedFields: managed,
			Labels:      map[string]string{corev1.LabelTopologyZone: "z1", "kubernetes.io/hostname": "n1"},
			Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0"}},
		Spec: corev1.NodeSpec{PodCIDR: "10.244.1.0/24"},
		Status: corev1.NodeStatus{
			Images:     []corev1.ContainerImage{{Names: []string{"registry.example/app:v1"}, SizeBytes: 1 << 20}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: "u2", ResourceVersion: "8", ManagedFields: managed,
			Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: `{"kind":"Service"}`, "nodemesh.io/traffic-type": "tcp"}},
		Spec:   corev1.ServiceSpec{ClusterIP: "10.96.0.10", Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "192.0.2.1"}}}},
	}
	zone := "z1"
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-abc", UID: "u3", ResourceVersion: "9", ManagedFields: managed,
			Labels: map[string]string{discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io",
				"app.kubernetes.io/name": "web", "helm.sh/chart": "web-1.0.0"},
			Annotations:     map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": "2026-12-06T08:00:00Z"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "Service", Name: "web", UID: "u2"}}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses: []string{"10.244.1.5"}, NodeName: ptr.To("n1"), Zone: &zone,
			TargetRef:          &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "web-0", UID: "u4", ResourceVersion: "10"},
			Hints:              &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "z1"}}},
			DeprecatedTopology: map[string]string{"kubernetes.io/hostname": "n1"},
		}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080)}},
	}

	wantNode := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "u1", ResourceVersion: "7",
		Labels: map[string]string{corev1.LabelTopologyZone: "z1"}}}
	wantSvc := svc.DeepCopy()
	wantSvc.ManagedFields = nil
	wantSvc.Annotations = map[string]string{"nodemesh.io/traffic-type": "tcp"}
	wantSvc.Status = corev1.ServiceStatus{}
	wantSlice := slice.DeepCopy()
	wantSlice.ManagedFields, wantSlice.Annotations, wantSlice.OwnerReferences = nil, nil, nil
	wantSlice.Labels = map[string]string{discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"}
	wantSlice.Endpoints[0].Hints, wantSlice.Endpoints[0].DeprecatedTopology = nil, nil
	wantSlice.Endpoints[0].TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "web-0"}

	for _, tc := range []struct {
		name    string
		in, out any
	}{
		{"node", node, wantNode},
		{"service", svc, wantSvc},
		{"endpointslice", slice, wantSlice},
		{"node without a zone", &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2", Labels: map[string]string{"a": "b"}}},
			&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := transform(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(got, tc.out) {
				t.Errorf("transform:\n got %+v\nwant %+v", got, tc.out)
			}
			again, err := transform(got)
			if err != nil || !equality.Semantic.DeepEqual(again, tc.out) {
				t.Errorf("a second pass changed it: %+v (%v)", again, err)
			}
		})
	}
	// The zone is what the topology reads of a Node, so a trimmed pair
	// still tells a zone change from status churn.
	moved := trimNode(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{corev1.LabelTopologyZone: "z2"}}})
	if !nodeChanged(wantNode, moved) || nodeChanged(wantNode, wantNode.DeepCopy()) {
		t.Error("nodeChanged on trimmed nodes")
	}
}
