// Package snapshottest loads snapshots from YAML fixtures for the builders'
// golden-file tests, and shuffles them for determinism tests.
//
// A fixture is a multi-document YAML file of Kubernetes and SMI objects, as
// kubectl would take them. Services labelled app.kubernetes.io/managed-by=
// nodemesh become ShadowServices. A TrafficTarget's spec.destination.port,
// which smi-sdk-go's v1alpha3 type drops, goes to TrafficTargetPorts. A
// document of kind "Options" is returned raw for the test to decode.
package snapshottest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/snapshot"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// shadowLabel marks shadow Services in fixtures (the team contract's label).
const shadowLabel = "app.kubernetes.io/managed-by"

// Load reads a fixture file into a snapshot. options is the raw JSON of the
// fixture's "Options" document, or nil.
func Load(path string) (s *snapshot.Snapshot, options []byte, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return Decode(data)
}

// Decode parses fixture YAML; see Load.
func Decode(data []byte) (*snapshot.Snapshot, []byte, error) {
	s := &snapshot.Snapshot{}
	var options []byte
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for n := 1; ; n++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return s, options, nil
			}
			return nil, nil, fmt.Errorf("document %d: %w", n, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
			continue
		}
		var head struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return nil, nil, fmt.Errorf("document %d: %w", n, err)
		}
		if head.Kind == "Options" {
			options = raw
			continue
		}
		if err := add(s, head.Kind, raw); err != nil {
			return nil, nil, fmt.Errorf("document %d (%s): %w", n, head.Kind, err)
		}
	}
}

func add(s *snapshot.Snapshot, kind string, raw []byte) error {
	switch kind {
	case "Service":
		return into(raw, func(o *corev1.Service) {
			if o.Labels[shadowLabel] == "nodemesh" {
				s.ShadowServices = append(s.ShadowServices, o)
			} else {
				s.Services = append(s.Services, o)
			}
		})
	case "EndpointSlice":
		return into(raw, func(o *discoveryv1.EndpointSlice) { s.EndpointSlices = append(s.EndpointSlices, o) })
	case "Pod":
		// Through the controller's informer transform, so the builders
		// see what they see in the controller.
		return into(raw, func(o *corev1.Pod) { s.Pods = append(s.Pods, snapshot.PodFrom(o)) })
	case "Node":
		return into(raw, func(o *corev1.Node) { s.Nodes = append(s.Nodes, o) })
	case "TrafficSplit":
		return into(raw, func(o *splitv1alpha4.TrafficSplit) { s.TrafficSplits = append(s.TrafficSplits, o) })
	case "HTTPRouteGroup":
		return into(raw, func(o *specsv1alpha4.HTTPRouteGroup) { s.HTTPRouteGroups = append(s.HTTPRouteGroups, o) })
	case "TCPRoute":
		return into(raw, func(o *specsv1alpha4.TCPRoute) { s.TCPRoutes = append(s.TCPRoutes, o) })
	case "UDPRoute":
		return into(raw, func(o *specsv1alpha4.UDPRoute) { s.UDPRoutes = append(s.UDPRoutes, o) })
	case "TrafficTarget":
		var port struct {
			Spec struct {
				Destination struct {
					Port int32 `json:"port"`
				} `json:"destination"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(raw, &port); err != nil {
			return err
		}
		return into(raw, func(o *accessv1alpha3.TrafficTarget) {
			s.TrafficTargets = append(s.TrafficTargets, o)
			if p := port.Spec.Destination.Port; p != 0 {
				if s.TrafficTargetPorts == nil {
					s.TrafficTargetPorts = map[types.NamespacedName]int32{}
				}
				s.TrafficTargetPorts[types.NamespacedName{Namespace: o.Namespace, Name: o.Name}] = p
			}
		})
	}
	return fmt.Errorf("kind %q is not a snapshot kind", kind)
}

func into[T any](raw []byte, put func(*T)) error {
	o := new(T)
	if err := json.Unmarshal(raw, o); err != nil {
		return err
	}
	put(o)
	return nil
}

// Shuffle returns a copy of s with every slice in a random order (the objects
// themselves are shared).
func Shuffle(s *snapshot.Snapshot, r *rand.Rand) *snapshot.Snapshot {
	out := *s
	out.Services = shuffled(r, s.Services)
	out.EndpointSlices = shuffled(r, s.EndpointSlices)
	out.Pods = shuffled(r, s.Pods)
	out.Nodes = shuffled(r, s.Nodes)
	out.ShadowServices = shuffled(r, s.ShadowServices)
	out.TrafficSplits = shuffled(r, s.TrafficSplits)
	out.HTTPRouteGroups = shuffled(r, s.HTTPRouteGroups)
	out.TCPRoutes = shuffled(r, s.TCPRoutes)
	out.UDPRoutes = shuffled(r, s.UDPRoutes)
	out.TrafficTargets = shuffled(r, s.TrafficTargets)
	return &out
}

func shuffled[T any](r *rand.Rand, in []T) []T {
	if in == nil {
		return nil
	}
	out := append([]T(nil), in...)
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// DeepCopy returns a copy of s that shares no object with it, so a test can
// check that a builder left its input alone (reflect.DeepEqual; JSON would
// not do, since smi-sdk-go encodes route headers in map order).
func DeepCopy(s *snapshot.Snapshot) *snapshot.Snapshot {
	out := *s
	out.Services = copyAll(s.Services, (*corev1.Service).DeepCopy)
	out.EndpointSlices = copyAll(s.EndpointSlices, (*discoveryv1.EndpointSlice).DeepCopy)
	out.Pods = copyAll(s.Pods, (*snapshot.Pod).DeepCopy)
	out.Nodes = copyAll(s.Nodes, (*corev1.Node).DeepCopy)
	out.ShadowServices = copyAll(s.ShadowServices, (*corev1.Service).DeepCopy)
	out.TrafficSplits = copyAll(s.TrafficSplits, (*splitv1alpha4.TrafficSplit).DeepCopy)
	out.HTTPRouteGroups = copyAll(s.HTTPRouteGroups, (*specsv1alpha4.HTTPRouteGroup).DeepCopy)
	out.TCPRoutes = copyAll(s.TCPRoutes, (*specsv1alpha4.TCPRoute).DeepCopy)
	out.UDPRoutes = copyAll(s.UDPRoutes, (*specsv1alpha4.UDPRoute).DeepCopy)
	out.TrafficTargets = copyAll(s.TrafficTargets, (*accessv1alpha3.TrafficTarget).DeepCopy)
	out.TrafficTargetPorts = maps.Clone(s.TrafficTargetPorts)
	return &out
}

func copyAll[T any](in []T, deepCopy func(T) T) []T {
	if in == nil {
		return nil
	}
	out := make([]T, len(in))
	for i, o := range in {
		out[i] = deepCopy(o)
	}
	return out
}

// Golden compares got with the file at path, or writes it when update is
// set. got should end with a newline.
func Golden(t testing.TB, path string, got []byte, update bool) {
	t.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the build (run with -update to accept, then review the diff):\n%s", path, lineDiff(want, got))
	}
}

// lineDiff shows the first differing lines, enough to see what changed.
func lineDiff(want, got []byte) string {
	w := bytes.Split(want, []byte("\n"))
	g := bytes.Split(got, []byte("\n"))
	var out bytes.Buffer
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 20; i++ {
		var wl, gl []byte
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if !bytes.Equal(wl, gl) {
			fmt.Fprintf(&out, "line %d:\n  want: %s\n  got:  %s\n", i+1, wl, gl)
			shown++
		}
	}
	return out.String()
}
