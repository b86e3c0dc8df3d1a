package topology

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/pkg/snapshot"
)

// TestBuilderForgetsGoneServices: a Service that leaves the snapshot
// leaves the Builder's memory too.
func TestBuilderForgetsGoneServices(t *testing.T) {
	svc := func(name string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.1", Ports: []corev1.ServicePort{{Port: 80}}}}
	}
	var bu Builder
	a, b := svc("a"), svc("b")
	bu.Build(&snapshot.Snapshot{Services: []*corev1.Service{a, b}}, Options{})
	if len(bu.services.byKey) != 2 {
		t.Fatalf("after a build of two services the memory holds %d", len(bu.services.byKey))
	}
	bu.Build(&snapshot.Snapshot{Services: []*corev1.Service{b}}, Options{})
	if _, ok := bu.services.byKey[nn("ns", "a")]; ok || len(bu.services.byKey) != 1 {
		t.Errorf("after service a went, the memory holds %v", bu.services.byKey)
	}
}
