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
		process bool   // validated as a process pod's
		wantErr string // empty: valid
	}{
		{"default ports share 7 across TCP and UDP", PodSpec{Name: "a", Node: "n", Ports: DefaultPorts}, false, ""},
		{"no name", PodSpec{Node: "n"}, false, "PodSpec.Name is required"},
		{"no node", PodSpec{Name: "a"}, false, "PodSpec.Node is required"},
		{"same TCP port twice", PodSpec{Name: "a", Node: "n", Ports: []Port{
			{Name: "http", Port: 80, Server: ServerWhoAmI},
			{Name: "echo", Port: 80, Server: ServerTCPEcho},
		}}, false, `port clash: TCP port 80 is declared twice (as "http" and "echo")`},
		{"same name twice", PodSpec{Name: "a", Node: "n", Ports: []Port{
			{Name: "http", Port: 80, Server: ServerWhoAmI},
			{Name: "http", Port: 81, Server: ServerWhoAmI},
		}}, false, `port name "http" is used twice`},
		{"port out of range", PodSpec{Name: "a", Node: "n", Ports: []Port{{Name: "http", Port: 0, Server: ServerWhoAmI}}}, false, "outside 1-65535"},
		{"unknown server", PodSpec{Name: "a", Node: "n", Ports: []Port{{Name: "x", Port: 1, Server: "ftp"}}}, false, `unknown server "ftp"`},
		{"invalid port name", PodSpec{Name: "a", Node: "n", Ports: []Port{{Name: "Not_Valid", Port: 1, Server: ServerTCPEcho}}}, false, `port name "Not_Valid"`},
		{"built-in server with a protocol", PodSpec{Name: "a", Node: "n", Ports: []Port{{Name: "dns", Port: 53, Server: ServerUDPEcho, Protocol: corev1.ProtocolUDP}}}, false, "leave Protocol empty"},
		{"process ports share 53 across TCP and UDP", PodSpec{Name: "a", Node: "n", Ports: []Port{
			{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
			{Name: "dns-tcp", Port: 53},
		}}, true, ""},
		{"process port with a built-in server", PodSpec{Name: "a", Node: "n", Ports: []Port{{Name: "http", Port: 80, Server: ServerWhoAmI}}}, true, "leave Server"},
		{"process port with SCTP", PodSpec{Name: "a", Node: "n", Ports: []Port{{Name: "s", Port: 9, Protocol: corev1.ProtocolSCTP}}}, true, `protocol "SCTP"`},
		{"process port declared twice", PodSpec{Name: "a", Node: "n", Ports: []Port{{Name: "a", Port: 9}, {Name: "b", Port: 9, Protocol: corev1.ProtocolTCP}}}, true, "port clash: TCP port 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validatePodSpec(tt.spec, tt.process)
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
