package controller

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// transform trims objects before they enter an informer cache, so the
// controller's memory grows with what it uses, not with what the apiserver
// stores: managed fields go from every object, and Pods keep only the fields
// the topology reads (identity, IPs, phase, node and container ports).
func transform(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return trimPod(o), nil
	case metav1.Object:
		o.SetManagedFields(nil)
	}
	return obj, nil
}

func trimPod(p *corev1.Pod) *corev1.Pod {
	out := &corev1.Pod{
		TypeMeta: p.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:              p.Name,
			Namespace:         p.Namespace,
			UID:               p.UID,
			ResourceVersion:   p.ResourceVersion,
			Labels:            podLabels(p.Labels),
			OwnerReferences:   controllerRef(p.OwnerReferences),
			DeletionTimestamp: p.DeletionTimestamp,
		},
		Spec: corev1.PodSpec{
			NodeName:           p.Spec.NodeName,
			ServiceAccountName: p.Spec.ServiceAccountName,
			HostNetwork:        p.Spec.HostNetwork,
		},
		Status: corev1.PodStatus{Phase: p.Status.Phase, PodIP: p.Status.PodIP, PodIPs: p.Status.PodIPs},
	}
	// Named targetPorts resolve against container ports (sidecars included).
	for _, group := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range group {
			if len(c.Ports) > 0 {
				out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Name: c.Name, Ports: c.Ports})
			}
		}
	}
	return out
}

// podLabels keeps the one label the topology reads (a Deployment's pods are
// named by it); real pods often carry many more.
func podLabels(in map[string]string) map[string]string {
	if h, ok := in["pod-template-hash"]; ok {
		return map[string]string{"pod-template-hash": h}
	}
	return nil
}

// controllerRef keeps the controlling owner only (the workload name).
func controllerRef(in []metav1.OwnerReference) []metav1.OwnerReference {
	for _, r := range in {
		if r.Controller != nil && *r.Controller {
			return []metav1.OwnerReference{r}
		}
	}
	return nil
}

// podChanged reports whether an update changed a field the topology reads;
// status-only churn (conditions, container states) costs no rebuild.
func podChanged(old, cur *corev1.Pod) bool {
	if old.Spec.NodeName != cur.Spec.NodeName || old.Spec.ServiceAccountName != cur.Spec.ServiceAccountName ||
		old.Spec.HostNetwork != cur.Spec.HostNetwork || old.Status.Phase != cur.Status.Phase ||
		old.Status.PodIP != cur.Status.PodIP || len(old.Status.PodIPs) != len(cur.Status.PodIPs) ||
		(old.DeletionTimestamp == nil) != (cur.DeletionTimestamp == nil) ||
		len(old.Spec.Containers) != len(cur.Spec.Containers) || len(old.OwnerReferences) != len(cur.OwnerReferences) ||
		old.Labels["pod-template-hash"] != cur.Labels["pod-template-hash"] {
		return true
	}
	for i := range old.Status.PodIPs {
		if old.Status.PodIPs[i] != cur.Status.PodIPs[i] {
			return true
		}
	}
	// Container ports rarely change on a live pod (only through an
	// in-place resize or ephemeral containers); compare them all anyway.
	for i := range old.Spec.Containers {
		a, b := old.Spec.Containers[i].Ports, cur.Spec.Containers[i].Ports
		if len(a) != len(b) {
			return true
		}
		for j := range a {
			if a[j] != b[j] {
				return true
			}
		}
	}
	for i := range old.OwnerReferences {
		if old.OwnerReferences[i].UID != cur.OwnerReferences[i].UID {
			return true
		}
	}
	return false
}

// nodeChanged reports whether a Node update changed its zone, the only field
// the topology reads: kubelets update Node status every few seconds.
func nodeChanged(old, cur *corev1.Node) bool {
	const zone = "topology.kubernetes.io/zone"
	return old.Labels[zone] != cur.Labels[zone]
}
