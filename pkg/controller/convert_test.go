package controller

import (
	"reflect"
	"testing"

	accessv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha2"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTrafficTargetConversionKeepsTheDestinationPort(t *testing.T) {
	port, huge := 8080, 1<<40
	in := &accessv1alpha2.TrafficTarget{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "t", UID: "u1"},
		Spec: accessv1alpha2.TrafficTargetSpec{
			Destination: accessv1alpha2.IdentityBindingSubject{Kind: "ServiceAccount", Name: "db", Namespace: "shop", Port: &port},
			Sources:     []accessv1alpha2.IdentityBindingSubject{{Kind: "ServiceAccount", Name: "web", Namespace: "other"}},
			Rules:       []accessv1alpha2.TrafficTargetRule{{Kind: "HTTPRouteGroup", Name: "api", Matches: []string{"read"}}},
		},
	}
	got := targetFromV1alpha2(in)
	want := accessv1alpha3.TrafficTargetSpec{
		Destination: accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Name: "db", Namespace: "shop"},
		Sources:     []accessv1alpha3.IdentityBindingSubject{{Kind: "ServiceAccount", Name: "web", Namespace: "other"}},
		Rules:       []accessv1alpha3.TrafficTargetRule{{Kind: "HTTPRouteGroup", Name: "api", Matches: []string{"read"}}},
	}
	if !reflect.DeepEqual(got.Spec, want) || got.port != 8080 || got.UID != "u1" || got.APIVersion != "access.smi-spec.io/v1alpha3" {
		t.Errorf("converted to %+v (port %d)", got.TrafficTarget, got.port)
	}
	in.Spec.Destination.Port = nil
	if got := targetFromV1alpha2(in); got.port != 0 {
		t.Errorf("no port converted to %d, want 0 (every port)", got.port)
	}
	in.Spec.Destination.Port = &huge
	if got := targetFromV1alpha2(in); got.port >= 1 && got.port <= 65535 {
		t.Errorf("port %d converted to %d, a valid port", huge, got.port)
	}
}
