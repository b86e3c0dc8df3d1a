package controllerbench

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	splitclient "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/split/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// benchNS holds the benchmark's services.
const benchNS = "bench"

// podsPerService and the every-tenth split are the anchor's shape.
const podsPerService = 5

// populator creates the benchmark's objects with many requests in flight.
type populator struct {
	kube  kubernetes.Interface
	split splitclient.Interface
	nodes []string
	next  netip.Addr // next pod IP; 10.245.0.0/16 is virtual, never bound
	mu    sync.Mutex
}

func newPopulator(kube kubernetes.Interface, split splitclient.Interface, nodes []string) *populator {
	return &populator{kube: kube, split: split, nodes: nodes, next: netip.MustParseAddr("10.245.0.1")}
}

func (p *populator) ip() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ip := p.next
	p.next = p.next.Next()
	return ip.String()
}

func svcName(i int) string { return fmt.Sprintf("svc-%05d", i) }

// service creates Service i with its pods and endpoints (see pods and
// serviceWithEndpoints).
func (p *populator) service(ctx context.Context, i int) error {
	eps, err := p.pods(ctx, i)
	if err != nil {
		return err
	}
	return p.serviceWithEndpoints(ctx, i, eps)
}

// pods creates the 5 Pods of service i (Running and Ready, no process: no
// traffic is sent in this benchmark) and returns their endpoints.
func (p *populator) pods(ctx context.Context, i int) ([]discoveryv1.Endpoint, error) {
	var eps []discoveryv1.Endpoint
	for k := range podsPerService {
		node := p.nodes[(i*podsPerService+k)%len(p.nodes)]
		pod, err := p.pod(ctx, fmt.Sprintf("%s-%d", svcName(i), k), svcName(i), node)
		if err != nil {
			return nil, err
		}
		eps = append(eps, discoveryv1.Endpoint{
			Addresses:  []string{pod.Status.PodIP},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true)},
			NodeName:   ptr.To(node),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: benchNS, Name: pod.Name},
		})
	}
	return eps, nil
}

// serviceWithEndpoints creates Service i (selector-less, so the
// EndpointSlice controller leaves it alone) and one EndpointSlice listing
// eps, as the EndpointSlice controller would.
func (p *populator) serviceWithEndpoints(ctx context.Context, i int, eps []discoveryv1.Endpoint) error {
	name := svcName(i)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	if _, err := p.kube.CoreV1().Services(benchNS).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("service %s: %w", name, err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: name + "-bench", Labels: map[string]string{
			discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "nodemesh-bench",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	if _, err := p.kube.DiscoveryV1().EndpointSlices(benchNS).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("endpointslice %s: %w", name, err)
	}
	return nil
}

// pod creates a Pod and reports it Running and Ready with an IP.
func (p *populator) pod(ctx context.Context, name, app, node string) (*corev1.Pod, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: name, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{
			Name: "app", Image: "bench.invalid/none", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		}}},
	}
	created, err := p.kube.CoreV1().Pods(benchNS).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", name, err)
	}
	ip := p.ip()
	now := metav1.NewTime(time.Now())
	created.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}, StartTime: &now,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}},
	}
	return p.kube.CoreV1().Pods(benchNS).UpdateStatus(ctx, created, metav1.UpdateOptions{})
}

// trafficSplit puts an 80/20 split on service i, between two other services.
func (p *populator) trafficSplit(ctx context.Context, i, n int) error {
	ts := &splitv1alpha4.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: svcName(i)},
		Spec: splitv1alpha4.TrafficSplitSpec{Service: svcName(i), Backends: []splitv1alpha4.TrafficSplitBackend{
			{Service: svcName((i + 1) % n), Weight: 80}, {Service: svcName((i + 2) % n), Weight: 20},
		}},
	}
	_, err := p.split.SplitV1alpha4().TrafficSplits(benchNS).Create(ctx, ts, metav1.CreateOptions{})
	return err
}

// parallel runs f(i) for i in [from, to) on workers goroutines and returns
// the first error.
func parallel(from, to, workers int, f func(i int) error) error {
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	for i := from; i < to; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
