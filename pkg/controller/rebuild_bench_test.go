package controller

import (
	"context"
	"fmt"
	"testing"

	accessfake "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/access/clientset/versioned/fake"
	specsfake "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/specs/clientset/versioned/fake"
	splitfake "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/split/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/nodemesh/nodemesh/pkg/smidiscovery"
)

// benchObjects is the controller benchmark's shape: n Services of one HTTP
// port, 5 ready Pods each, one EndpointSlice each.
func benchObjects(n int) []runtime.Object {
	var objs []runtime.Object
	for i := range n {
		name := fmt.Sprintf("svc-%05d", i)
		objs = append(objs, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name},
			Spec:       corev1.ServiceSpec{ClusterIP: fmt.Sprintf("10.96.%d.%d", i/250, i%250+1), Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		})
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "bench", Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080)}},
		}
		for k := range 5 {
			ip := fmt.Sprintf("10.%d.%d.%d", 100+i/50000, (i*5+k)/250%200, (i*5+k)%250+1)
			pod := fmt.Sprintf("%s-%d", name, k)
			objs = append(objs, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: pod},
				Spec:       corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
				Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip},
			})
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
				Addresses: []string{ip}, NodeName: ptr.To("node-a"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "bench", Name: pod},
			})
		}
		objs = append(objs, slice)
	}
	return objs
}

// benchRebuild measures one rebuild (snapshot, both builds, publish) over
// synced informer caches, without writers: what every event costs.
func benchRebuild(b *testing.B, n int) {
	kube := fake.NewClientset(benchObjects(n)...)
	cfg := testConfig()
	opts, _ := cfg.TopologyOptions()
	c := newWithClients(cfg, opts, clients{kube: kube, split: splitfake.NewSimpleClientset(), specs: specsfake.NewSimpleClientset(), access: accessfake.NewSimpleClientset()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.src = newSources(c.clients, cfg, smidiscovery.Result{}, func(string) cache.ResourceEventHandler { return cache.ResourceEventHandlerFuncs{} })
	c.src.start(ctx.Done())
	cache.WaitForCacheSync(ctx.Done(), c.src.synced...)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Alternate one weight-like change so Publish encodes a new version
		// each time, as after a real edit.
		c.opts.ProxyHTTPPort = int32(7000 + i%2)
		if err := c.rebuild(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRebuild1000 and BenchmarkRebuild3000 are the controller
// benchmark's sizes (integration/bench/controller) without the apiserver.
func BenchmarkRebuild1000(b *testing.B) { benchRebuild(b, 1000) }
func BenchmarkRebuild3000(b *testing.B) { benchRebuild(b, 3000) }
