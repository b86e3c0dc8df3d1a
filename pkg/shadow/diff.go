package shadow

import (
	"cmp"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// NeedsUpdate reports whether actual differs from desired in a field nodemesh
// owns: our labels, the selector, the type, internalTrafficPolicy, and each
// port's name, number, protocol and targetPort. Fields the apiserver sets
// (clusterIP(s), ipFamilies, ipFamilyPolicy, sessionAffinity defaults,
// nodePorts, resourceVersion, ...) and labels or annotations added by others
// are ignored, so a restart with nothing changed writes nothing, while a
// hand-edit of an owned field is put back.
func NeedsUpdate(desired, actual *corev1.Service) bool {
	if actual == nil {
		return true
	}
	for k, v := range desired.Labels {
		if got, ok := actual.Labels[k]; !ok || got != v {
			return true
		}
	}
	if !maps.Equal(desired.Spec.Selector, actual.Spec.Selector) {
		return true
	}
	if typeOf(actual) != typeOf(desired) {
		return true
	}
	if policyOf(actual) != policyOf(desired) {
		return true
	}
	return !slices.EqualFunc(sortedPorts(desired), sortedPorts(actual), samePort)
}

// Merge returns a copy of actual carrying desired's owned fields, ready for an
// Update call: resourceVersion, clusterIP and everything else the apiserver
// or other tools set are kept.
func Merge(desired, actual *corev1.Service) *corev1.Service {
	out := actual.DeepCopy()
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	maps.Copy(out.Labels, desired.Labels)
	out.Spec.Selector = maps.Clone(desired.Spec.Selector)
	out.Spec.Type = desired.Spec.Type
	out.Spec.InternalTrafficPolicy = desired.Spec.InternalTrafficPolicy
	// Ports are replaced whole; nodePorts go with them, which a ClusterIP
	// Service may not carry anyway.
	ports := slices.Clone(desired.Spec.Ports)
	out.Spec.Ports = ports
	return out
}

// Orphans returns the existing shadow Services (managed by nodemesh) that no
// desired Service has the name of, sorted by name: the controller deletes
// them, so nothing leaks when a source Service goes.
func Orphans(desired, existing []*corev1.Service) []*corev1.Service {
	want := make(map[string]bool, len(desired))
	for _, d := range desired {
		want[d.Namespace+"/"+d.Name] = true
	}
	var out []*corev1.Service
	for _, e := range existing {
		if e.Labels[LabelManagedBy] == ManagedByValue && !want[e.Namespace+"/"+e.Name] {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *corev1.Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}

func typeOf(s *corev1.Service) corev1.ServiceType {
	if s.Spec.Type == "" {
		return corev1.ServiceTypeClusterIP
	}
	return s.Spec.Type
}

func policyOf(s *corev1.Service) corev1.ServiceInternalTrafficPolicy {
	if s.Spec.InternalTrafficPolicy == nil {
		// The apiserver defaults an unset policy to Cluster.
		return corev1.ServiceInternalTrafficPolicyCluster
	}
	return *s.Spec.InternalTrafficPolicy
}

func sortedPorts(s *corev1.Service) []corev1.ServicePort {
	ps := slices.Clone(s.Spec.Ports)
	slices.SortFunc(ps, func(a, b corev1.ServicePort) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Name, b.Name))
	})
	return ps
}

func samePort(a, b corev1.ServicePort) bool {
	return a.Name == b.Name && a.Port == b.Port && protocolOf(a) == protocolOf(b) && targetOf(a) == targetOf(b)
}

func protocolOf(p corev1.ServicePort) corev1.Protocol {
	if p.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return p.Protocol
}

// targetOf normalises targetPort: the apiserver defaults an unset one to the
// port number.
func targetOf(p corev1.ServicePort) intstr.IntOrString {
	if p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == 0 {
		return intstr.FromInt32(p.Port)
	}
	return p.TargetPort
}
