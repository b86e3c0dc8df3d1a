package controller

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/nodemesh/nodemesh/pkg/smidiscovery"
)

// TestSnapshotKeepsListsUntilAnEvent: a snapshot reuses the previous one's
// Service list while no Service event has come, and lists again after one;
// an update that changes nothing (same resourceVersion) keeps the list.
func TestSnapshotKeepsListsUntilAnEvent(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", ResourceVersion: "1"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.1", Ports: []corev1.ServicePort{{Port: 80}}}}
	kube := fake.NewClientset(svc)
	var seen atomic.Int64
	src := newSources(clients{kube: kube}, testConfig(), smidiscovery.Result{}, func(kind string) cache.ResourceEventHandler {
		if kind != "Service" {
			return cache.ResourceEventHandlerFuncs{}
		}
		count := func(any) { seen.Add(1) }
		return cache.ResourceEventHandlerFuncs{AddFunc: count, UpdateFunc: func(_, o any) { count(o) }, DeleteFunc: count}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src.start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), src.synced...) {
		t.Fatal("caches did not sync")
	}
	snap := func() []*corev1.Service {
		t.Helper()
		s, err := src.snapshot()
		if err != nil {
			t.Fatal(err)
		}
		return s.Services
	}
	waitFor(t, "the add event", func() bool { return seen.Load() == 1 })
	first := snap()
	if again := snap(); len(first) != 1 || &again[0] != &first[0] {
		t.Fatalf("no event between two snapshots, yet the list was made again (or is wrong): %v", first)
	}

	// The same object again: relevantUpdate ignores it, the list stays.
	gen := src.gen("Service").Load()
	h := counting{gen: src.gen("Service"), next: cache.ResourceEventHandlerFuncs{}}
	h.OnUpdate(svc, svc)
	if src.gen("Service").Load() != gen {
		t.Error("an update that changes nothing moved the generation")
	}

	edited := svc.DeepCopy()
	edited.ResourceVersion = "2"
	edited.Spec.Ports[0].Port = 8080
	if _, err := kube.CoreV1().Services("shop").Update(ctx, edited, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the update event", func() bool { return seen.Load() == 2 })
	after := snap()
	if len(after) != 1 || after[0].Spec.Ports[0].Port != 8080 {
		t.Fatalf("after an update the snapshot holds %v", after)
	}
	if &after[0] == &first[0] {
		t.Error("the list was not made again after an event")
	}
}

// TestListedKeepsOnlyWholeLists: a list whose listing failed is not kept.
func TestListedKeepsOnlyWholeLists(t *testing.T) {
	var l listed[int]
	var gen atomic.Uint64
	calls := 0
	list := func(fail bool) func(*[]error) []int {
		return func(errs *[]error) []int {
			calls++
			if fail {
				*errs = append(*errs, errors.New("boom"))
			}
			return []int{calls}
		}
	}
	var errs []error
	if got := l.get(&gen, &errs, list(true)); !slices.Equal(got, []int{1}) || len(errs) != 1 {
		t.Fatalf("failed listing: %v, errors %v", got, errs)
	}
	if got := l.get(&gen, &errs, list(false)); !slices.Equal(got, []int{2}) {
		t.Fatalf("after a failed listing, got %v; want a new list", got)
	}
	if got := l.get(&gen, &errs, list(false)); !slices.Equal(got, []int{2}) {
		t.Fatalf("same generation: got %v, want the kept list", got)
	}
	gen.Add(1)
	if got := l.get(&gen, &errs, list(false)); !slices.Equal(got, []int{3}) {
		t.Fatalf("new generation: got %v, want a new list", got)
	}
}
