package topology

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestWorkloadLabel pins the pod -> workload mapping behind the proxy's
// source_workload metric label (issue 9): the owning controller, a
// Deployment through its ReplicaSet, else the pod itself.
func TestWorkloadLabel(t *testing.T) {
	owner := func(kind, name string, controller bool) []metav1.OwnerReference {
		c := controller
		return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: "u", Controller: &c}}
	}
	tests := []struct {
		name   string
		owners []metav1.OwnerReference
		labels map[string]string
		want   string
	}{
		{"deployment through its replicaset", owner("ReplicaSet", "web-7d4b9c8f5", true), map[string]string{"pod-template-hash": "7d4b9c8f5"}, "Deployment/web"},
		{"replicaset whose name lacks the hash", owner("ReplicaSet", "web-manual", true), map[string]string{"pod-template-hash": "7d4b9c8f5"}, "ReplicaSet/web-manual"},
		{"replicaset without pod-template-hash", owner("ReplicaSet", "web-7d4b9c8f5", true), nil, "ReplicaSet/web-7d4b9c8f5"},
		{"hash equal to the whole name", owner("ReplicaSet", "-abc", true), map[string]string{"pod-template-hash": "abc"}, "ReplicaSet/-abc"},
		{"statefulset", owner("StatefulSet", "db", true), nil, "StatefulSet/db"},
		{"daemonset", owner("DaemonSet", "agent", true), nil, "DaemonSet/agent"},
		{"job", owner("Job", "migrate", true), nil, "Job/migrate"},
		{"deployment owning the pod directly", owner("Deployment", "api", true), nil, "Deployment/api"},
		{"an owner that is not the controller", owner("StatefulSet", "db", false), nil, "Pod/p-0"},
		{"an unknown controller kind", owner("Rollout", "canary", true), nil, "Pod/p-0"},
		{"no owner", nil, nil, "Pod/p-0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "p-0", OwnerReferences: tc.owners, Labels: tc.labels}}
			if got := workload(p); got != tc.want {
				t.Errorf("workload = %q, want %q", got, tc.want)
			}
		})
	}
}
