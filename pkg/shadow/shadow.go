// Package shadow computes the desired shadow Services: one ClusterIP Service
// in the mesh namespace per mesh service, selecting the node proxies, with
// `internalTrafficPolicy: Local` so a client always reaches its own node's
// proxy. It is pure: the controller compares Desired with what exists
// (NeedsUpdate) and writes only the difference.
//
// The TCP/UDP proxy-port allocation lives only in the shadow Services'
// targetPorts; Allocations reads it back.
package shadow

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/nodemesh/nodemesh/pkg/portalloc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Labels set on every shadow Service (team contract).
const (
	LabelManagedBy       = "app.kubernetes.io/managed-by"
	ManagedByValue       = "nodemesh"
	LabelSourceNamespace = "nodemesh.io/source-namespace"
	LabelSourceName      = "nodemesh.io/source-name"
)

// ProxySelector selects exactly the node proxy pods.
var ProxySelector = map[string]string{
	"app.kubernetes.io/name":      "nodemesh",
	"app.kubernetes.io/component": "proxy",
}

// Kind is how the proxy serves one shadow port. It is encoded in the port
// name ("http-80", "tcp-5432", "udp-53") so Allocations can tell a TCP
// proxy port from the shared HTTP port on read-back.
type Kind string

// Port kinds.
const (
	KindHTTP Kind = "http"
	KindTCP  Kind = "tcp"
	KindUDP  Kind = "udp"
)

// Protocol is the Kubernetes protocol of a port of this kind.
func (k Kind) Protocol() corev1.Protocol {
	if k == KindUDP {
		return corev1.ProtocolUDP
	}
	return corev1.ProtocolTCP
}

// Spec is the plain description of one shadow Service.
type Spec struct {
	// Namespace is the mesh namespace.
	Namespace string `json:"namespace"`
	// Name is the shadow Service name (see Names).
	Name string `json:"name"`
	// Source is the user Service this shadow serves.
	Source types.NamespacedName `json:"source"`
	// Ports are the shadow ports, sorted by Port then Kind.
	Ports []Port `json:"ports"`
}

// Port is one shadow port.
type Port struct {
	// Kind says how the proxy serves it.
	Kind Kind `json:"kind"`
	// Port is the source Service's port number (what clients call).
	Port int32 `json:"port"`
	// TargetPort is the proxy's shared HTTP port, or the allocated TCP/UDP
	// proxy port.
	TargetPort int32 `json:"targetPort"`
}

// PortName is the shadow port's name: "<kind>-<port>".
func (p Port) PortName() string { return string(p.Kind) + "-" + strconv.Itoa(int(p.Port)) }

// Render returns the Service object of one spec, or nil for a spec without
// ports: Kubernetes rejects a ClusterIP Service with no port.
func Render(s *Spec) *corev1.Service {
	if len(s.Ports) == 0 {
		return nil
	}
	return render(s)
}

// Desired renders specs as Service objects, sorted by name. Specs without
// ports are skipped: Kubernetes rejects a ClusterIP Service with no port.
func Desired(specs []Spec) []*corev1.Service {
	out := make([]*corev1.Service, 0, len(specs))
	for i := range specs {
		if len(specs[i].Ports) > 0 {
			out = append(out, render(&specs[i]))
		}
	}
	slices.SortFunc(out, func(a, b *corev1.Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}

func render(s *Spec) *corev1.Service {
	local := corev1.ServiceInternalTrafficPolicyLocal
	ports := slices.Clone(s.Ports)
	slices.SortFunc(ports, func(a, b Port) int { return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Kind, b.Kind)) })
	svcPorts := make([]corev1.ServicePort, len(ports))
	for i, p := range ports {
		svcPorts[i] = corev1.ServicePort{
			Name:       p.PortName(),
			Protocol:   p.Kind.Protocol(),
			Port:       p.Port,
			TargetPort: intstr.FromInt32(p.TargetPort),
		}
	}
	return &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: s.Namespace,
			Name:      s.Name,
			Labels: map[string]string{
				LabelManagedBy:       ManagedByValue,
				LabelSourceNamespace: s.Source.Namespace,
				LabelSourceName:      s.Source.Name,
			},
		},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeClusterIP,
			Selector:              maps.Clone(ProxySelector),
			Ports:                 svcPorts,
			InternalTrafficPolicy: &local,
		},
	}
}

// IsShadow reports whether svc is a shadow Service managed by nodemesh.
func IsShadow(svc *corev1.Service) bool {
	return svc != nil && svc.Labels[LabelManagedBy] == ManagedByValue &&
		svc.Labels[LabelSourceNamespace] != "" && svc.Labels[LabelSourceName] != ""
}

// SourceOf returns the source Service a shadow Service points back to.
func SourceOf(svc *corev1.Service) (types.NamespacedName, bool) {
	if !IsShadow(svc) {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: svc.Labels[LabelSourceNamespace], Name: svc.Labels[LabelSourceName]}, true
}

// ParsePortName splits a shadow port name "<kind>-<port>".
func ParsePortName(name string) (Kind, int32, bool) {
	k, p, ok := strings.Cut(name, "-")
	if !ok {
		return "", 0, false
	}
	n, err := strconv.ParseInt(p, 10, 32)
	switch Kind(k) {
	case KindHTTP, KindTCP, KindUDP:
		return Kind(k), int32(n), err == nil
	}
	return "", 0, false
}

// Allocations reads the TCP/UDP proxy-port allocations back from existing
// shadow Services, sorted. Only ports whose name says tcp or udp, whose
// number matches the name and whose targetPort is a number count; anything
// hand-edited beyond that is dropped and reallocated.
func Allocations(shadows []*corev1.Service) []portalloc.Allocation {
	var out []portalloc.Allocation
	for _, svc := range shadows {
		out = append(out, ServiceAllocations(svc)...)
	}
	SortAllocations(out)
	return out
}

// ServiceAllocations is Allocations of one shadow Service, in port order;
// nil for a Service that is not a shadow.
func ServiceAllocations(svc *corev1.Service) []portalloc.Allocation {
	src, ok := SourceOf(svc)
	if !ok {
		return nil
	}
	var out []portalloc.Allocation
	for _, p := range svc.Spec.Ports {
		kind, port, ok := ParsePortName(p.Name)
		if !ok || kind == KindHTTP || port != p.Port || p.Protocol != kind.Protocol() ||
			p.TargetPort.Type != intstr.Int || p.TargetPort.IntVal <= 0 {
			continue
		}
		out = append(out, portalloc.Allocation{
			Key:       portalloc.Key{Service: src, Port: p.Port, Protocol: kind.Protocol()},
			ProxyPort: p.TargetPort.IntVal,
		})
	}
	return out
}

// SortAllocations sorts allocations as Allocations returns them.
func SortAllocations(a []portalloc.Allocation) {
	slices.SortFunc(a, func(a, b portalloc.Allocation) int {
		return cmp.Or(a.Key.Compare(b.Key), cmp.Compare(a.ProxyPort, b.ProxyPort))
	})
}

// String renders a Spec for logs and test failures.
func (s Spec) String() string {
	return fmt.Sprintf("%s/%s (from %s, %d ports)", s.Namespace, s.Name, s.Source, len(s.Ports))
}
