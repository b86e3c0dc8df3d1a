package routing

import (
	"testing"

	"github.com/nodemesh/nodemesh/pkg/topology"
)

// TestBuilderForgetsUnusedEndpoints: the endpoint lists a build did not use
// leave the Builder's memory, so it holds no service that is gone.
func TestBuilderForgetsUnusedEndpoints(t *testing.T) {
	svc := func(name string) *topology.Service {
		return &topology.Service{Namespace: "ns", Name: name, MeshName: name + ".ns.mesh", Scheme: "http", ShadowName: name + "--ns",
			Ports: []*topology.ServicePort{{Port: 80, Protocol: "http", Endpoints: []topology.Endpoint{{IP: "10.0.0.1", Port: 8080, Ready: true}}}}}
	}
	var bu Builder
	bu.Build(&topology.Topology{Services: []*topology.Service{svc("a"), svc("b")}})
	if len(bu.eps) != 2 {
		t.Fatalf("after a build of two services the memory holds %d endpoint lists", len(bu.eps))
	}
	bu.Build(&topology.Topology{Services: []*topology.Service{svc("b")}})
	if _, ok := bu.eps[epKey{"ns", "a", 80, "http"}]; ok || len(bu.eps) != 1 {
		t.Errorf("after service a went, the memory holds %v", bu.eps)
	}
}
