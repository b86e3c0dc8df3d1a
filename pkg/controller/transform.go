package controller

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/pkg/snapshot"
)

// transform trims objects before they enter an informer cache, so the
// controller's memory grows with what it uses, not with what the apiserver
// stores:
//   - managed fields go from every object;
//   - a Pod becomes a snapshot.Pod, the few fields the topology reads
//     (about a fifth of a trimmed *corev1.Pod). Pod informers therefore
//     hold *snapshot.Pod: list them with listPods, not their generated
//     lister;
//   - a Node keeps its name, identity and zone label only. Its status
//     (conditions, addresses, the list of every image on the node) is
//     most of its size, and the topology reads the zone alone;
//   - a Service loses kubectl's last-applied-configuration annotation (a
//     JSON copy of the whole object) and its status;
//   - an EndpointSlice loses its annotations, owner references and the
//     labels other than its service's name and manager, and each endpoint
//     its hints, deprecated topology and the UID and version of its
//     target reference (the topology reads the target's kind, namespace
//     and name).
//
// Each case must be idempotent: client-go may hand a transformed object
// back (a *snapshot.Pod too).
func transform(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return snapshot.PodFrom(o), nil
	case *corev1.Node:
		return trimNode(o), nil
	case *corev1.Service:
		o.SetManagedFields(nil)
		delete(o.Annotations, corev1.LastAppliedConfigAnnotation)
		o.Status = corev1.ServiceStatus{}
	case *discoveryv1.EndpointSlice:
		trimEndpointSlice(o)
	case metav1.Object:
		o.SetManagedFields(nil)
	}
	return obj, nil
}

// nodeZoneLabel is the one Node label the topology reads.
const nodeZoneLabel = corev1.LabelTopologyZone

func trimNode(n *corev1.Node) *corev1.Node {
	out := &corev1.Node{TypeMeta: n.TypeMeta, ObjectMeta: metav1.ObjectMeta{
		Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion,
	}}
	if z, ok := n.Labels[nodeZoneLabel]; ok {
		out.Labels = map[string]string{nodeZoneLabel: z}
	}
	return out
}

func trimEndpointSlice(es *discoveryv1.EndpointSlice) {
	es.SetManagedFields(nil)
	es.Annotations = nil
	es.OwnerReferences = nil
	for k := range es.Labels {
		if k != discoveryv1.LabelServiceName && k != discoveryv1.LabelManagedBy {
			delete(es.Labels, k)
		}
	}
	for i := range es.Endpoints {
		ep := &es.Endpoints[i]
		ep.Hints = nil
		ep.DeprecatedTopology = nil
		if r := ep.TargetRef; r != nil && (r.UID != "" || r.ResourceVersion != "" || r.APIVersion != "" || r.FieldPath != "") {
			ep.TargetRef = &corev1.ObjectReference{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
		}
	}
}

// podChanged reports whether an update changed a field the topology reads;
// status-only churn (conditions, container states) costs no rebuild, since
// the cached pods hold none of it.
func podChanged(old, cur *snapshot.Pod) bool { return !old.Equal(cur) }

// nodeChanged reports whether a Node update changed its zone, the only field
// the topology reads: kubelets update Node status every few seconds.
func nodeChanged(old, cur *corev1.Node) bool {
	return old.Labels[nodeZoneLabel] != cur.Labels[nodeZoneLabel]
}
