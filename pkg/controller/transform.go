package controller

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/pkg/snapshot"
)

// transform trims objects before they enter an informer cache, so the
// controller's memory grows with what it uses, not with what the apiserver
// stores: managed fields go from every object, and a Pod becomes a
// snapshot.Pod, the few fields the topology reads (about a fifth of a
// trimmed *corev1.Pod). Pod informers therefore hold *snapshot.Pod: list
// them with listPods, not their generated lister.
func transform(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return snapshot.PodFrom(o), nil
	case metav1.Object:
		o.SetManagedFields(nil)
	}
	return obj, nil // a *snapshot.Pod too: a transform must be idempotent
}

// podChanged reports whether an update changed a field the topology reads;
// status-only churn (conditions, container states) costs no rebuild, since
// the cached pods hold none of it.
func podChanged(old, cur *snapshot.Pod) bool { return !old.Equal(cur) }

// nodeChanged reports whether a Node update changed its zone, the only field
// the topology reads: kubelets update Node status every few seconds.
func nodeChanged(old, cur *corev1.Node) bool {
	const zone = "topology.kubernetes.io/zone"
	return old.Labels[zone] != cur.Labels[zone]
}
