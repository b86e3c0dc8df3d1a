package smidiscovery

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	discoveryfake "k8s.io/client-go/discovery/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/nodemesh/nodemesh/pkg/snapshot"
)

func served(gv string, names ...string) *metav1.APIResourceList {
	l := &metav1.APIResourceList{GroupVersion: gv}
	for _, n := range names {
		l.APIResources = append(l.APIResources, metav1.APIResource{Name: n}, metav1.APIResource{Name: n + "/status"})
	}
	return l
}

func TestDiscover(t *testing.T) {
	all := []*metav1.APIResourceList{
		served("split.smi-spec.io/v1alpha2", "trafficsplits"),
		served("split.smi-spec.io/v1alpha3", "trafficsplits"),
		served("split.smi-spec.io/v1alpha4", "trafficsplits"),
		served("specs.smi-spec.io/v1alpha4", "httproutegroups", "tcproutes", "udproutes"),
		served("access.smi-spec.io/v1alpha3", "traffictargets"),
	}
	tests := []struct {
		name        string
		resources   []*metav1.APIResourceList
		want        snapshot.SMIStatus
		wantKinds   [3]bool
		wantMissing []string
	}{
		{
			name:      "everything served picks the newest versions",
			resources: all,
			want:      snapshot.SMIStatus{Split: "v1alpha4", Specs: "v1alpha4", Access: "v1alpha3"},
			wantKinds: [3]bool{true, true, true},
		},
		{
			name:        "no CRDs turns every feature off",
			resources:   nil,
			want:        snapshot.SMIStatus{},
			wantMissing: []string{"routes specs.smi-spec.io (v1alpha4)", "trafficsplits split.smi-spec.io (v1alpha4, v1alpha3, v1alpha2)", "traffictargets access.smi-spec.io (v1alpha2, v1alpha3)"},
		},
		{
			name:        "only an old split version falls back to it",
			resources:   []*metav1.APIResourceList{served("split.smi-spec.io/v1alpha2", "trafficsplits")},
			want:        snapshot.SMIStatus{Split: "v1alpha2"},
			wantMissing: []string{"routes specs.smi-spec.io (v1alpha4)", "traffictargets access.smi-spec.io (v1alpha2, v1alpha3)"},
		},
		{
			name: "v1alpha3 preferred over v1alpha2",
			resources: []*metav1.APIResourceList{
				served("split.smi-spec.io/v1alpha2", "trafficsplits"),
				served("split.smi-spec.io/v1alpha3", "trafficsplits"),
				served("specs.smi-spec.io/v1alpha4", "httproutegroups"),
			},
			want:        snapshot.SMIStatus{Split: "v1alpha3", Specs: "v1alpha4"},
			wantKinds:   [3]bool{true, false, false},
			wantMissing: []string{"tcproutes specs.smi-spec.io/v1alpha4", "traffictargets access.smi-spec.io (v1alpha2, v1alpha3)", "udproutes specs.smi-spec.io/v1alpha4"},
		},
		{
			name: "TrafficTarget v1alpha2 preferred: only its SDK type has destination.port",
			resources: []*metav1.APIResourceList{
				served("access.smi-spec.io/v1alpha3", "traffictargets"),
				served("access.smi-spec.io/v1alpha2", "traffictargets"),
			},
			want:        snapshot.SMIStatus{Access: "v1alpha2"},
			wantMissing: []string{"routes specs.smi-spec.io (v1alpha4)", "trafficsplits split.smi-spec.io (v1alpha4, v1alpha3, v1alpha2)"},
		},
		{
			name:        "a group version without the kind is not enough",
			resources:   []*metav1.APIResourceList{served("split.smi-spec.io/v1alpha4", "somethingelse")},
			want:        snapshot.SMIStatus{},
			wantMissing: []string{"routes specs.smi-spec.io (v1alpha4)", "trafficsplits split.smi-spec.io (v1alpha4, v1alpha3, v1alpha2)", "traffictargets access.smi-spec.io (v1alpha2, v1alpha3)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &discoveryfake.FakeDiscovery{Fake: &clienttesting.Fake{Resources: tt.resources}}
			got, err := Discover(d)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.want {
				t.Errorf("status = %+v, want %+v", got.Status, tt.want)
			}
			if k := [3]bool{got.HTTPRouteGroups, got.TCPRoutes, got.UDPRoutes}; k != tt.wantKinds {
				t.Errorf("kinds = %v, want %v", k, tt.wantKinds)
			}
			if strings.Join(got.Missing, "|") != strings.Join(tt.wantMissing, "|") {
				t.Errorf("missing = %q, want %q", got.Missing, tt.wantMissing)
			}
			if got.Enabled() != (tt.want != snapshot.SMIStatus{}) {
				t.Errorf("Enabled() = %v", got.Enabled())
			}
		})
	}
}

func TestDiscoverReturnsTransportErrors(t *testing.T) {
	f := &clienttesting.Fake{}
	f.AddReactor("get", "resource", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	if _, err := Discover(&discoveryfake.FakeDiscovery{Fake: f}); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v, want the transport error", err)
	}
}

func TestSummaryIsOneLine(t *testing.T) {
	r := Result{Status: snapshot.SMIStatus{Split: "v1alpha3"}, Missing: []string{"a", "b"}}
	got := r.Summary()
	want := "SMI: split v1alpha3, specs off, access off (not served: a; b)"
	if got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}
