package routing_test

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/pkg/routing"
	"github.com/nodemesh/nodemesh/pkg/shadow"
	"github.com/nodemesh/nodemesh/pkg/snapshot"
	"github.com/nodemesh/nodemesh/pkg/topology"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// synth makes a steady-state cluster: n services of one HTTP port, each with
// eps ready endpoints (one slice, one pod each) spread over 50 nodes, a
// shadow Service already in place, and, when splitEvery > 0, a 90/10
// TrafficSplit on every splitEvery-th service towards its two neighbours.
func synth(n, eps, splitEvery int) *snapshot.Snapshot {
	s := &snapshot.Snapshot{}
	for i := range 50 {
		s.Nodes = append(s.Nodes, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", i),
			Labels: map[string]string{"topology.kubernetes.io/zone": fmt.Sprintf("zone-%d", i%3)}}})
	}
	tcp := corev1.ProtocolTCP
	ready := true
	for i := range n {
		ns := fmt.Sprintf("ns-%d", i%100)
		name := fmt.Sprintf("svc-%d", i)
		s.Services = append(s.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{ClusterIP: ip(96, i), Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: tcp}}},
		})
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8080)), Protocol: &tcp}},
		}
		for e := range eps {
			podIP := ip(244, i*eps+e)
			pod := fmt.Sprintf("%s-%d", name, e)
			node := fmt.Sprintf("node-%d", (i+e)%50)
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
				Addresses: []string{podIP}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
				NodeName: &node, TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod},
			})
			s.Pods = append(s.Pods, snapshot.PodFrom(&corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pod},
				Spec:       corev1.PodSpec{ServiceAccountName: name, NodeName: node},
				Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: podIP},
			}))
		}
		s.EndpointSlices = append(s.EndpointSlices, slice)
		if splitEvery > 0 && i%splitEvery == 0 && i+2 < n {
			s.TrafficSplits = append(s.TrafficSplits, &splitv1alpha4.TrafficSplit{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: splitv1alpha4.TrafficSplitSpec{Service: name, Backends: []splitv1alpha4.TrafficSplitBackend{
					// Neighbours 100 apart share the namespace.
					{Service: fmt.Sprintf("svc-%d", (i+100)%n), Weight: 90}, {Service: fmt.Sprintf("svc-%d", (i+200)%n), Weight: 10}}},
			})
		}
	}
	// Steady state: the shadows of a previous build exist.
	s.ShadowServices = shadow.Desired(topology.Build(s, topology.Options{}).ShadowSpecs())
	for i, sh := range s.ShadowServices {
		sh.Spec.ClusterIP = ip(97, i)
	}
	return s
}

// cpuTime is the process's user+system CPU time, in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// ip returns a distinct address for every i below 2^16 * (256-b).
func ip(b int, i int) string { return fmt.Sprintf("10.%d.%d.%d", b+i>>16, (i>>8)&255, i&255) }

func ptr[T any](v T) *T { return &v }

// withACL adds, per namespace, one HTTPRouteGroup, and per service a
// TrafficTarget letting the previous service's pods call it.
func withACL(s *snapshot.Snapshot) *snapshot.Snapshot {
	for i := range 100 {
		s.HTTPRouteGroups = append(s.HTTPRouteGroups, &specsv1alpha4.HTTPRouteGroup{
			ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns-%d", i), Name: "routes"},
			Spec: specsv1alpha4.HTTPRouteGroupSpec{Matches: []specsv1alpha4.HTTPMatch{
				{Name: "api", PathRegex: "/api", Methods: []string{"GET"}}, {Name: "all"}}},
		})
	}
	for i, svc := range s.Services {
		s.TrafficTargets = append(s.TrafficTargets, &accessv1alpha3.TrafficTarget{
			ObjectMeta: metav1.ObjectMeta{Namespace: svc.Namespace, Name: svc.Name},
			Spec: accessv1alpha3.TrafficTargetSpec{
				Destination: accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Name: svc.Name},
				Sources:     []accessv1alpha3.IdentityBindingSubject{{Kind: "ServiceAccount", Name: fmt.Sprintf("svc-%d", (i+len(s.Services)-100)%len(s.Services))}},
				Rules:       []accessv1alpha3.TrafficTargetRule{{Kind: "HTTPRouteGroup", Name: "routes", Matches: []string{"api"}}},
			},
		})
	}
	return s
}

func benchBuild(b *testing.B, n, eps, splitEvery int) {
	benchSnapshot(b, synth(n, eps, splitEvery), topology.Options{}, n)
}

func benchSnapshot(b *testing.B, s *snapshot.Snapshot, opts topology.Options, n int) {
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		if t := routing.Build(topology.Build(s, opts)); len(t.HTTP) != n {
			b.Fatalf("%d routes", len(t.HTTP))
		}
	}
	b.StopTimer()
	// The machine is shared, so wall time (ns/op) waits for other work too;
	// the process's CPU time (user+system, collector included) does not.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
	peak, live := heapOfOneBuild(s, opts)
	b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
	b.ReportMetric(float64(live)/(1<<20), "result-MiB")
}

// heapOfOneBuild measures one build's heap, with the collector running as
// it would in the controller: peak is the largest heap (live plus not yet
// collected objects) seen by a sampler during the build, above the heap
// before it; live is what the result keeps after a collection.
func heapOfOneBuild(s *snapshot.Snapshot, opts topology.Options) (peak, live int64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	var ms runtime.MemStats
	heap := func() int64 { runtime.GC(); runtime.ReadMemStats(&ms); return int64(ms.HeapAlloc) }
	base := heap()
	var max atomic.Uint64
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			if h := read(); h > max.Load() {
				max.Store(h)
			}
			select {
			case <-done:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	}()
	t := routing.Build(topology.Build(s, opts))
	close(done)
	<-stopped
	if h := read(); h > max.Load() {
		max.Store(h)
	}
	live = heap() - base
	runtime.KeepAlive(t)
	runtime.KeepAlive(s) // else the snapshot's collection is counted as negative growth
	return int64(max.Load()) - base, live
}

// BenchmarkBuild10000x10 is issue 4's pure build target: 10,000 services
// with 10 endpoints each in under 1 s and 300 MiB.
func BenchmarkBuild10000x10(b *testing.B) { benchBuild(b, 10000, 10, 0) }

// BenchmarkBuild1000x5Splits and BenchmarkBuild3000x5Splits match the
// controller benchmark's shape: 5 endpoints, a TrafficSplit on every tenth.
func BenchmarkBuild1000x5Splits(b *testing.B) { benchBuild(b, 1000, 5, 10) }
func BenchmarkBuild3000x5Splits(b *testing.B) { benchBuild(b, 3000, 5, 10) }

// BenchmarkBuild10000x10ACL is the 10,000-service build in ACL mode, with a
// TrafficTarget per service.
func BenchmarkBuild10000x10ACL(b *testing.B) {
	benchSnapshot(b, withACL(synth(10000, 10, 0)), topology.Options{ACL: true}, 10000)
}
