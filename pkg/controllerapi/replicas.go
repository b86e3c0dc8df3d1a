package controllerapi

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// PodProxy reaches one controller replica through the apiserver's pod
// proxy: /api/v1/namespaces/<Namespace>/pods/<Pod>:<Port>/proxy/...
type PodProxy struct {
	Kube      kubernetes.Interface
	Namespace string
	Pod       string
	Port      int32
}

// Where names the pod.
func (p PodProxy) Where() string {
	return fmt.Sprintf("pod %s/%s:%d (through the apiserver)", p.Namespace, p.Pod, p.Port)
}

// Get sends GET path through the pod proxy.
func (p PodProxy) Get(ctx context.Context, path string) ([]byte, int, error) {
	return proxyGet(ctx, p.Kube, p.Namespace, "pods", p.Pod+":"+strconv.Itoa(int(p.Port)), path)
}

// Replica is one controller replica.
type Replica struct {
	// Pod is the replica's pod name.
	Pod string
	API *Client
}

// Replicas returns a client per pod behind the controller Service s, read
// from its EndpointSlices (ready or not), sorted by pod. Each replica
// numbers its own table versions and knows only the proxies that poll it,
// so a question about every proxy must ask every replica.
func Replicas(ctx context.Context, s ServiceProxy) ([]Replica, error) {
	s = s.withDefaults()
	svc, err := s.Kube.CoreV1().Services(s.Namespace).Get(ctx, s.Service, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("controller service: %w", err)
	}
	portName, found := "", false
	for _, p := range svc.Spec.Ports {
		if p.Name == s.Port || strconv.Itoa(int(p.Port)) == s.Port {
			portName, found = p.Name, true
		}
	}
	if !found {
		return nil, fmt.Errorf("controller service %s/%s has no port %s", s.Namespace, s.Service, s.Port)
	}
	list, err := s.Kube.DiscoveryV1().EndpointSlices(s.Namespace).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + s.Service})
	if err != nil {
		return nil, fmt.Errorf("controller endpoints: %w", err)
	}
	seen := map[string]bool{}
	var out []Replica
	for _, sl := range list.Items {
		var port int32
		for _, p := range sl.Ports {
			if p.Port != nil && (p.Name == nil && portName == "" || p.Name != nil && *p.Name == portName) {
				port = *p.Port
			}
		}
		for _, e := range sl.Endpoints {
			if port == 0 || e.TargetRef == nil || e.TargetRef.Kind != "Pod" || seen[e.TargetRef.Name] {
				continue
			}
			seen[e.TargetRef.Name] = true
			out = append(out, Replica{Pod: e.TargetRef.Name, API: New(PodProxy{Kube: s.Kube, Namespace: s.Namespace, Pod: e.TargetRef.Name, Port: port})})
		}
	}
	slices.SortFunc(out, func(a, b Replica) int { return strings.Compare(a.Pod, b.Pod) })
	return out, nil
}
