package controller

import (
	"context"
	"fmt"
	"slices"
	"testing"

	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	accessfake "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/access/clientset/versioned/fake"
	specsfake "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/specs/clientset/versioned/fake"
	splitfake "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/split/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/nodemesh/nodemesh/pkg/shadow"
	"github.com/nodemesh/nodemesh/pkg/smidiscovery"
	"github.com/nodemesh/nodemesh/pkg/snapshot"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

// benchObjects is the controller benchmark's shape: n Services of one HTTP
// port, 5 ready Pods each, one EndpointSlice each, and the shadow Service
// of each as the controller writes it, with its ClusterIP (a running mesh:
// every build reads the shadows back).
func benchObjects(n int) []runtime.Object {
	var objs []runtime.Object
	for i := range n {
		name := fmt.Sprintf("svc-%05d", i)
		src := types.NamespacedName{Namespace: "bench", Name: name}
		sh := shadow.Render(&shadow.Spec{
			Namespace: topology.DefaultMeshNamespace, Name: shadow.PlainName(src), Source: src,
			Ports: []shadow.Port{{Kind: shadow.KindHTTP, Port: 80, TargetPort: topology.DefaultProxyHTTPPort}},
		})
		sh.Spec.ClusterIP = fmt.Sprintf("10.97.%d.%d", i/250, i%250+1)
		sh.Spec.ClusterIPs = []string{sh.Spec.ClusterIP}
		objs = append(objs, sh)
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

// benchSplits is the controller benchmark's TrafficSplits: an 80/20 split
// on every tenth of n services, towards its two neighbours.
func benchSplits(n int) []*splitv1alpha4.TrafficSplit {
	var out []*splitv1alpha4.TrafficSplit
	for i := 0; i < n; i += 10 {
		out = append(out, &splitv1alpha4.TrafficSplit{
			ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("svc-%05d", i)},
			Spec: splitv1alpha4.TrafficSplitSpec{Service: fmt.Sprintf("svc-%05d", i), Backends: []splitv1alpha4.TrafficSplitBackend{
				{Service: fmt.Sprintf("svc-%05d", (i+1)%n), Weight: 80}, {Service: fmt.Sprintf("svc-%05d", (i+2)%n), Weight: 20},
			}},
		})
	}
	return out
}

// benchRebuild measures the rebuild after one TrafficSplit weight edit
// (snapshot, both builds, publish, the shadow diff) over synced informer
// caches, as the leader: what a weight edit costs the controller.
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
	// The splits are served from a list of our own (smi-sdk-go's fake
	// clientset cannot feed an informer), which an edit changes as an
	// informer does: the edited split becomes a new object.
	splits := benchSplits(n)
	c.src.smi.Store(&smiSources{
		result: smidiscovery.Result{Status: snapshot.SMIStatus{Split: "v1alpha4"}},
		stop:   make(chan struct{}),
		splits: []listFunc[*splitv1alpha4.TrafficSplit]{func() ([]*splitv1alpha4.TrafficSplit, error) { return slices.Clone(splits), nil }},
	})
	w := newShadowWriter(c)
	c.writer.Store(w)
	defer w.bulk.ShutDown()
	defer w.fresh.ShutDown()
	if err := c.rebuild(); err != nil { // the first build, and its shadow diff
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		edited := splits[0].DeepCopy()
		weight := 1 + i%97
		edited.Spec.Backends[0].Weight, edited.Spec.Backends[1].Weight = weight, 100-weight
		splits = append([]*splitv1alpha4.TrafficSplit{edited}, splits[1:]...)
		before := c.server.Version()
		if err := c.rebuild(); err != nil {
			b.Fatal(err)
		}
		if c.server.Version() == before {
			b.Fatal("the weight edit published no new table")
		}
	}
}

// BenchmarkRebuild1000 and BenchmarkRebuild3000 are the controller
// benchmark's sizes (integration/bench/controller) without the apiserver.
func BenchmarkRebuild1000(b *testing.B) { benchRebuild(b, 1000) }
func BenchmarkRebuild3000(b *testing.B) { benchRebuild(b, 3000) }
