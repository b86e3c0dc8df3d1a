package snapshot

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

func TestPodFromKeepsWhatTheBuildersRead(t *testing.T) {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-7d9f8-x1", Namespace: "shop", UID: "u1", ResourceVersion: "42",
			Labels:            map[string]string{"pod-template-hash": "7d9f8", "app": "web"},
			Annotations:       map[string]string{"big": strings.Repeat("x", 1000)},
			OwnerReferences:   []metav1.OwnerReference{{Kind: "Other", Name: "o", UID: "o1"}, {Kind: "ReplicaSet", Name: "web-7d9f8", UID: "o2", Controller: ptr.To(true)}},
			DeletionTimestamp: &metav1.Time{},
		},
		Spec: corev1.PodSpec{NodeName: "node-a", ServiceAccountName: "web", HostNetwork: true,
			InitContainers: []corev1.Container{{Name: "sidecar", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
				Ports: []corev1.ContainerPort{{Name: "admin", ContainerPort: 9901}}}},
			Containers: []corev1.Container{
				{Name: "app", Image: "img", Ports: []corev1.ContainerPort{
					{Name: "http", ContainerPort: 8080},
					{ContainerPort: 8081}, // unnamed: no targetPort can name it
					{Name: "dns", ContainerPort: 5353, Protocol: corev1.ProtocolUDP},
					{Name: "http", ContainerPort: 8443, Protocol: corev1.ProtocolSCTP},
				}},
				{Name: "noports", Image: "img"},
			}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1", PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady}}},
	}
	want := &Pod{
		Namespace: "shop", Name: "web-7d9f8-x1", UID: "u1", ResourceVersion: "42",
		ServiceAccount: "web", Node: "node-a", Workload: "Deployment/web", Phase: corev1.PodRunning,
		IPs: []string{"10.0.0.1", "fd00::1"},
		Ports: []NamedPort{
			{Name: "admin", Protocol: corev1.ProtocolTCP, Port: 9901},
			{Name: "http", Protocol: corev1.ProtocolTCP, Port: 8080},
			{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 5353},
			{Name: "http", Protocol: corev1.ProtocolSCTP, Port: 8443},
		},
		HostNetwork: true, Deleting: true,
	}
	got := PodFrom(p)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PodFrom:\n got %+v\nwant %+v", got, want)
	}

	// An informer cache object: client-go keys it through meta.Accessor.
	if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(got); err != nil || key != "shop/web-7d9f8-x1" {
		t.Errorf("cache key = %q, %v", key, err)
	}
	m, err := meta.Accessor(got)
	if err != nil || m.GetResourceVersion() != "42" || m.GetUID() != "u1" || m.GetNamespace() != "shop" {
		t.Errorf("meta.Accessor = %+v, %v", m, err)
	}
	m.SetName("changed")
	if got.Name != "web-7d9f8-x1" {
		t.Error("setting the accessor's name changed the pod")
	}
	c := got.DeepCopyObject().(*Pod)
	if !reflect.DeepEqual(c, got) {
		t.Errorf("DeepCopyObject = %+v", c)
	}
	c.IPs[0], c.Ports[0].Port = "10.9.9.9", 1
	if got.IPs[0] != "10.0.0.1" || got.Ports[0].Port != 9901 {
		t.Error("the deep copy shares its slices")
	}
}

func TestPodFromIPs(t *testing.T) {
	ips := func(podIP string, podIPs ...string) []string {
		p := &corev1.Pod{Status: corev1.PodStatus{PodIP: podIP}}
		for _, ip := range podIPs {
			p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
		}
		return PodFrom(p).IPs
	}
	for _, tc := range []struct {
		name string
		got  []string
		want []string
	}{
		{"none", ips(""), nil},
		{"podIP only", ips("10.0.0.1"), []string{"10.0.0.1"}},
		{"podIP and podIPs", ips("10.0.0.1", "10.0.0.1"), []string{"10.0.0.1"}},
		{"dual stack", ips("10.0.0.1", "10.0.0.1", "fd00::1"), []string{"10.0.0.1", "fd00::1"}},
		{"podIPs only, repeated and empty", ips("", "fd00::1", "", "fd00::1"), []string{"fd00::1"}},
		{"podIP not in podIPs", ips("10.0.0.2", "10.0.0.1", "fd00::1"), []string{"10.0.0.1", "fd00::1", "10.0.0.2"}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s: IPs = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

// TestPodWorkload pins the pod -> workload mapping behind the proxy's
// source_workload metric label (issue 9): the owning controller, a
// Deployment through its ReplicaSet, else the pod itself.
func TestPodWorkload(t *testing.T) {
	owner := func(kind, name string, controller bool) []metav1.OwnerReference {
		c := controller
		return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: "u", Controller: &c}}
	}
	tests := []struct {
		name   string
		owners []metav1.OwnerReference
		labels map[string]string
		want   string
	}{
		{"deployment through its replicaset", owner("ReplicaSet", "web-7d4b9c8f5", true), map[string]string{"pod-template-hash": "7d4b9c8f5"}, "Deployment/web"},
		{"replicaset whose name lacks the hash", owner("ReplicaSet", "web-manual", true), map[string]string{"pod-template-hash": "7d4b9c8f5"}, "ReplicaSet/web-manual"},
		{"replicaset without pod-template-hash", owner("ReplicaSet", "web-7d4b9c8f5", true), nil, "ReplicaSet/web-7d4b9c8f5"},
		{"hash equal to the whole name", owner("ReplicaSet", "-abc", true), map[string]string{"pod-template-hash": "abc"}, "ReplicaSet/-abc"},
		{"statefulset", owner("StatefulSet", "db", true), nil, "StatefulSet/db"},
		{"daemonset", owner("DaemonSet", "agent", true), nil, "DaemonSet/agent"},
		{"job", owner("Job", "migrate", true), nil, "Job/migrate"},
		{"deployment owning the pod directly", owner("Deployment", "api", true), nil, "Deployment/api"},
		{"an owner that is not the controller", owner("StatefulSet", "db", false), nil, "Pod/p-0"},
		{"an unknown controller kind", owner("Rollout", "canary", true), nil, "Pod/p-0"},
		{"no owner", nil, nil, "Pod/p-0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "p-0", OwnerReferences: tc.owners, Labels: tc.labels}}
			if got := PodFrom(p).Workload; got != tc.want {
				t.Errorf("workload = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPodEqual(t *testing.T) {
	base := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "p", ResourceVersion: "1"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}}}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1"},
	}
	a := PodFrom(base)
	edit := func(f func(*corev1.Pod)) *Pod {
		p := base.DeepCopy()
		p.ResourceVersion = "2"
		f(p)
		return PodFrom(p)
	}
	if b := edit(func(p *corev1.Pod) { p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady}} }); !a.Equal(b) {
		t.Error("a status-only update is not Equal")
	}
	for name, f := range map[string]func(*corev1.Pod){
		"ip":       func(p *corev1.Pod) { p.Status.PodIP = "10.0.0.2" },
		"phase":    func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded },
		"port":     func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 81 },
		"deleting": func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{} },
		"node":     func(p *corev1.Pod) { p.Spec.NodeName = "n" },
		"account":  func(p *corev1.Pod) { p.Spec.ServiceAccountName = "sa" },
		"ownership": func(p *corev1.Pod) {
			p.OwnerReferences = []metav1.OwnerReference{{Kind: "Job", Name: "j", Controller: ptr.To(true)}}
		},
	} {
		if a.Equal(edit(f)) {
			t.Errorf("%s: a changed pod is Equal", name)
		}
	}
}
