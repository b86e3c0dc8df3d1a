package controller

import (
	"context"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

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

	snap, err := src.snapshot(smidiscovery.Result{})
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
