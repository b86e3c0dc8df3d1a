package snapshot

import (
	"cmp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// Pod is the part of a Kubernetes Pod the builders read. The controller's
// Pod informers cache this, not *corev1.Pod (PodFrom is their transform):
// a corev1.Pod is 1,240 bytes before any of its containers (408 bytes
// each), and a cluster holds many more Pods than any other kind.
//
// An informer replaces a Pod, never modifies it, when the Kubernetes Pod
// changes, so an unchanged pointer means an unchanged pod (the topology
// Builder's pod memo relies on that).
type Pod struct {
	Namespace, Name string
	// UID and ResourceVersion name the object in Events about it; client-go
	// reads ResourceVersion too.
	UID             types.UID
	ResourceVersion string
	// ServiceAccount is spec.serviceAccountName as set ("" means default).
	ServiceAccount string
	Node           string
	// Workload names the pod's owning workload; see workload.
	Workload string
	Phase    corev1.PodPhase
	// IPs are status.podIPs, then status.podIP if it is not among them,
	// without empty or repeated addresses.
	IPs []string
	// Ports are the named ports of every container (init containers
	// first), for named targetPorts.
	Ports       []NamedPort
	HostNetwork bool
	// Deleting is set once the pod has a deletionTimestamp.
	Deleting bool
}

// NamedPort is a named container port.
type NamedPort struct {
	Name string
	// Protocol is never empty: an unset protocol is TCP.
	Protocol corev1.Protocol
	Port     int32
}

// PodFrom converts a Pod. It is the controller's informer transform, and the
// test fixtures' Pods go through it too.
func PodFrom(p *corev1.Pod) *Pod {
	out := &Pod{
		Namespace:       p.Namespace,
		Name:            p.Name,
		UID:             p.UID,
		ResourceVersion: p.ResourceVersion,
		ServiceAccount:  p.Spec.ServiceAccountName,
		Node:            p.Spec.NodeName,
		Workload:        workload(p),
		Phase:           canonical(p.Status.Phase, corev1.PodPending, corev1.PodRunning, corev1.PodSucceeded, corev1.PodFailed, corev1.PodUnknown),
		IPs:             podIPs(p),
		HostNetwork:     p.Spec.HostNetwork,
		Deleting:        p.DeletionTimestamp != nil,
	}
	n := 0
	for _, group := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range group {
			for _, cp := range c.Ports {
				if cp.Name != "" {
					n++
				}
			}
		}
	}
	if n > 0 {
		out.Ports = make([]NamedPort, 0, n)
		for _, group := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
			for _, c := range group {
				for _, cp := range c.Ports {
					if cp.Name != "" {
						proto := canonical(cmp.Or(cp.Protocol, corev1.ProtocolTCP), corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP)
						out.Ports = append(out.Ports, NamedPort{Name: cp.Name, Protocol: proto, Port: cp.ContainerPort})
					}
				}
			}
		}
	}
	return out
}

// canonical returns the constant equal to s, if any, so that millions of
// cached copies of "Running" or "TCP" share one string.
func canonical[S ~string](s S, constants ...S) S {
	if i := slices.Index(constants, s); i >= 0 {
		return constants[i]
	}
	return s
}

func podIPs(p *corev1.Pod) []string {
	if len(p.Status.PodIPs) <= 1 && (len(p.Status.PodIPs) == 0 || p.Status.PodIPs[0].IP == p.Status.PodIP) {
		if p.Status.PodIP == "" {
			return nil
		}
		return []string{p.Status.PodIP} // the common case
	}
	var ips []string
	for _, ip := range p.Status.PodIPs {
		if ip.IP != "" && !slices.Contains(ips, ip.IP) {
			ips = append(ips, ip.IP)
		}
	}
	if p.Status.PodIP != "" && !slices.Contains(ips, p.Status.PodIP) {
		ips = append(ips, p.Status.PodIP)
	}
	return ips
}

// workload names a pod's owning workload, a bounded metrics label: the
// controlling owner if it is a StatefulSet, DaemonSet, Job or Deployment; a
// ReplicaSet named "<deployment>-<pod-template-hash>" gives that Deployment,
// another ReplicaSet itself; anything else gives "Pod/<name>".
func workload(p *corev1.Pod) string {
	owner := metav1.GetControllerOf(p)
	if owner == nil {
		return "Pod/" + p.Name
	}
	switch owner.Kind {
	case "ReplicaSet":
		if h := p.Labels["pod-template-hash"]; h != "" {
			if base, ok := strings.CutSuffix(owner.Name, "-"+h); ok && base != "" {
				return "Deployment/" + base
			}
		}
		return "ReplicaSet/" + owner.Name
	case "StatefulSet", "DaemonSet", "Job", "Deployment":
		return owner.Kind + "/" + owner.Name
	}
	return "Pod/" + p.Name
}

// Equal reports whether p and q hold the same pod data, ResourceVersion
// aside (it changes with every update, read fields or not).
func (p *Pod) Equal(q *Pod) bool {
	return p.Namespace == q.Namespace && p.Name == q.Name && p.UID == q.UID && p.ServiceAccount == q.ServiceAccount &&
		p.Node == q.Node && p.Workload == q.Workload && p.Phase == q.Phase && p.HostNetwork == q.HostNetwork &&
		p.Deleting == q.Deleting && slices.Equal(p.IPs, q.IPs) && slices.Equal(p.Ports, q.Ports)
}

// DeepCopy returns a copy of p that shares nothing mutable with it.
func (p *Pod) DeepCopy() *Pod {
	out := *p
	out.IPs = slices.Clone(p.IPs)
	out.Ports = slices.Clone(p.Ports)
	return &out
}

// A Pod is an informer cache object. client-go finds its key, namespace
// index and resourceVersion through meta.Accessor, which takes a
// metav1.ObjectMetaAccessor; its debugging aids (the cache mutation and
// watch-list consistency detectors) want a runtime.Object. Pod implements
// both rather than holding an ObjectMeta (about 240 bytes of fields it does
// not need): GetObjectMeta builds a small ObjectMeta on each call, a few
// short-lived allocations per informer event.
var (
	_ runtime.Object            = (*Pod)(nil)
	_ metav1.ObjectMetaAccessor = (*Pod)(nil)
)

// GetObjectMeta returns a new ObjectMeta of p's namespace, name, UID and
// resourceVersion; setting its fields leaves p alone.
func (p *Pod) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, UID: p.UID, ResourceVersion: p.ResourceVersion}
}

// GetObjectKind returns an empty kind: a Pod keeps no TypeMeta (informers
// do not fill it in either).
func (p *Pod) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject implements runtime.Object.
func (p *Pod) DeepCopyObject() runtime.Object { return p.DeepCopy() }
