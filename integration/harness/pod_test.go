package harness

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestValidatePodSpecNamesTheMistake(t *testing.T) {
	tests := []struct {
		name    string
		spec    PodSpec
		wantErr string // empty: valid
	}{
		{"default ports share 7 across TCP and UDP", PodSpec{Name: "a", Node: "n", Ports: DefaultPorts}, ""},
		{"no name", PodSpec{Node: "n"}, "PodSpec.Name is required"},
		{"no node", PodSpec{Name: "a"}, "PodSpec.Node is required"},
		{"same TCP port twice", PodSpec{Name: "a", Node: "n", Ports: []Port{
			{Name: "http", Port: 80, Server: ServerWhoAmI},
			{Name: "echo", Port: 80, Server: ServerTCPEcho},
		}}, `port clash: TCP port 80 is declared twice (as "http" and "echo")`},
		{"same name twice", PodSpec{Name: "a", Node: "n", Ports: []Port{
			{Name: "http", Port: 80, Server: ServerWhoAmI},
			{Name: "http", Port: 81, Server: ServerWhoAmI},
		}}, `port name "http" is used twice`},
		{"port out of range", PodSpec{Name: "a", Node: "n", Ports: []Port{{Name: "http", Port: 0, Server: ServerWhoAmI}}}, "outside 1-65535"},
		{"unknown server", PodSpec{Name: "a", Node: "n", Ports: []Port{{Name: "x", Port: 1, Server: "ftp"}}}, `unknown server "ftp"`},
		{"invalid port name", PodSpec{Name: "a", Node: "n", Ports: []Port{{Name: "Not_Valid", Port: 1, Server: ServerTCPEcho}}}, `port name "Not_Valid"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validatePodSpec(tt.spec, false)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got error %v, want one saying %q", err, tt.wantErr)
			}
		})
	}
}

func TestSetReadinessFlipsReadyConditionsOnly(t *testing.T) {
	now := metav1.Now()
	status := podStatus(&Node{}, netip.MustParseAddr("10.244.1.2"), now)
	setReadiness(&status, false, now)
	for _, cond := range status.Conditions {
		want := corev1.ConditionTrue
		if cond.Type == corev1.PodReady || cond.Type == corev1.ContainersReady {
			want = corev1.ConditionFalse
		}
		if cond.Status != want {
			t.Errorf("condition %s = %s, want %s", cond.Type, cond.Status, want)
		}
	}
	if status.ContainerStatuses[0].Ready {
		t.Error("container still ready")
	}
	if status.Phase != corev1.PodRunning {
		t.Errorf("phase %s, want Running: a not-ready pod keeps running", status.Phase)
	}
}
