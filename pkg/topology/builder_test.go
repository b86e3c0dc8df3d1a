package topology_test

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/snapshot"
	"github.com/nodemesh/nodemesh/pkg/snapshot/snapshottest"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

// TestBuilderMatchesBuild runs one Builder through every fixture, each built
// twice (the second time from a shuffled copy holding the same objects, so
// the memory is used) and then with its pods changed in the ways an
// informer changes them, and expects Build's bytes every time.
func TestBuilderMatchesBuild(t *testing.T) {
	var bu topology.Builder
	check := func(what string, s *snapshot.Snapshot, opts topology.Options) {
		t.Helper()
		want := encode(t, topology.Build(s, opts))
		if got := encode(t, bu.Build(s, opts)); !bytes.Equal(got, want) {
			t.Fatalf("%s: Builder differs from Build:\n%s\nwant\n%s", what, got, want)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, path := range fixtures(t) {
		s, opts := load(t, path)
		check(path, s, opts)
		check(path+" again, shuffled", snapshottest.Shuffle(s, r), opts)
		aliased := opts
		aliased.Aliases = []string{"maesh"}
		check(path+" with an alias", s, aliased)
		check(path+" without it again", s, opts)
		if len(s.Services) > 0 {
			edited := *s
			edited.Services = slices.Clone(s.Services)
			svc := s.Services[0].DeepCopy()
			svc.Annotations = map[string]string{"nodemesh.io/retry-attempts": "2"}
			if len(svc.Spec.Ports) > 0 {
				svc.Spec.Ports[0].Port++
			}
			edited.Services[0] = svc
			check(path+" with a service edited", &edited, opts)
			// Shadow names depend on the set of services.
			deleted := *s
			deleted.Services = s.Services[1:]
			check(path+" with a service deleted", &deleted, opts)
		}
		if len(s.EndpointSlices) > 0 {
			edited := *s
			edited.EndpointSlices = slices.Clone(s.EndpointSlices)
			es := s.EndpointSlices[0].DeepCopy()
			es.Endpoints = es.Endpoints[:len(es.Endpoints)/2]
			edited.EndpointSlices[0] = es
			check(path+" with a slice edited", &edited, opts)
		}
		if len(s.Nodes) > 0 {
			edited := *s
			edited.Nodes = slices.Clone(s.Nodes)
			n := s.Nodes[0].DeepCopy()
			n.Labels = map[string]string{"topology.kubernetes.io/zone": "elsewhere"}
			edited.Nodes[0] = n
			check(path+" with a node's zone changed", &edited, opts)
		}
		if len(s.ShadowServices) > 0 {
			// A shadow's facts are kept by object: a replaced shadow must
			// be read again, a deleted one forgotten.
			for i := range s.ShadowServices {
				edited := *s
				edited.ShadowServices = slices.Clone(s.ShadowServices)
				sh := s.ShadowServices[i].DeepCopy()
				sh.Spec.ClusterIP, sh.Spec.ClusterIPs = "10.99.0.9", []string{"10.99.0.9"}
				for j := range sh.Spec.Ports {
					sh.Spec.Ports[j].TargetPort.IntVal++
				}
				edited.ShadowServices[i] = sh
				check(path+" with a shadow's ClusterIP and proxy ports changed", &edited, opts)
				relabelled := edited
				relabelled.ShadowServices = slices.Clone(edited.ShadowServices)
				sh = sh.DeepCopy()
				sh.Labels = map[string]string{"app.kubernetes.io/managed-by": "someone-else"}
				relabelled.ShadowServices[i] = sh
				check(path+" with a shadow no longer ours", &relabelled, opts)
				deleted := *s
				deleted.ShadowServices = slices.Delete(slices.Clone(s.ShadowServices), i, i+1)
				check(path+" with a shadow deleted", &deleted, opts)
			}
		}
		check(path+" as it was", s, opts)
		if len(s.Pods) == 0 {
			continue
		}
		// Named targetPorts resolve in the pods: renumber every container
		// port.
		renumbered := *s
		renumbered.Pods = make([]*snapshot.Pod, len(s.Pods))
		for i, p := range s.Pods {
			p = p.DeepCopy()
			for j := range p.Ports {
				p.Ports[j].Port += 1000
			}
			renumbered.Pods[i] = p
		}
		check(path+" with container ports renumbered", &renumbered, opts)
		// An update replaces a pod with a new object: here its IP moves
		// onto another pod's, which makes both lose their identity.
		moved := *s
		moved.Pods = slices.Clone(s.Pods)
		p := moved.Pods[0].DeepCopy()
		p.IPs = slices.Clone(moved.Pods[len(moved.Pods)-1].IPs)
		moved.Pods[0] = p
		check(path+" with a pod's IP moved", &moved, opts)
		check(path+" back to the original pods", s, opts)
		deleted := *s
		deleted.Pods = s.Pods[1:]
		check(path+" with a pod deleted", &deleted, opts)
		twice := *s
		twice.Pods = append(slices.Clone(s.Pods), s.Pods[0])
		check(path+" with a pod listed twice", &twice, opts)
		check(path+" with the same pod listed twice again", &twice, opts)
	}
}
