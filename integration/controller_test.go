package integration_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nodemesh/nodemesh/integration/harness"
	"github.com/nodemesh/nodemesh/pkg/controller"
	"github.com/nodemesh/nodemesh/pkg/shadow"
)

// TestControllerShadowServices: a user creates HTTP, TCP, UDP and
// unmeshable Services; the controller gives each meshable one a shadow
// Service with the right ports, reports the unmeshable one, and a restart
// with nothing changed keeps every port allocation and writes nothing.
func TestControllerShadowServices(t *testing.T) {
	c := harness.Start(t)
	createNamespaces(t, c, "nodemesh", "shop")
	createService(t, c, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80}, {Name: "admin", Port: 8080},
		}},
	})
	createService(t, c, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db", Annotations: map[string]string{"mesh.traefik.io/traffic-type": "tcp"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "db"}, Ports: []corev1.ServicePort{
			{Name: "pg", Port: 5432}, {Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
		}},
	})
	createService(t, c, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "external"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.invalid"},
	})
	first := startController(t, c, nil)

	t.Log("each meshable Service gets its shadow, with the right ports")
	waitUntil(t, settle, "the shadow services", func() bool {
		return shadowOf(t, c, "web--shop") != nil && shadowOf(t, c, "db--shop") != nil
	})
	web, db := shadowOf(t, c, "web--shop"), shadowOf(t, c, "db--shop")
	wantPorts(t, web, "http-80 80/TCP->7000", "http-8080 8080/TCP->7000")
	wantPorts(t, db, "tcp-5432 5432/TCP->10000", "udp-53 53/UDP->11000")
	for _, s := range []*corev1.Service{web, db} {
		if s.Spec.InternalTrafficPolicy == nil || *s.Spec.InternalTrafficPolicy != corev1.ServiceInternalTrafficPolicyLocal {
			t.Errorf("%s: internalTrafficPolicy %v, want Local", s.Name, s.Spec.InternalTrafficPolicy)
		}
		if s.Spec.Selector["app.kubernetes.io/name"] != "nodemesh" || s.Spec.Selector["app.kubernetes.io/component"] != "proxy" || len(s.Spec.Selector) != 2 {
			t.Errorf("%s: selector %v, want the proxies", s.Name, s.Spec.Selector)
		}
		if s.Labels["nodemesh.io/source-namespace"] != "shop" || s.Labels["app.kubernetes.io/managed-by"] != "nodemesh" {
			t.Errorf("%s: labels %v", s.Name, s.Labels)
		}
	}
	if s := shadowOf(t, c, "external--shop"); s != nil {
		t.Errorf("an ExternalName service got a shadow: %v", s.Spec.Ports)
	}

	t.Log("a shadow's ClusterIP is the one the controller chose for its name, and comes back when the shadow is deleted")
	picker, err := shadow.NewIPPicker(harness.ServiceCIDR)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := web.Spec.ClusterIP, picker.Pick("web--shop", 0).String(); got != want {
		t.Errorf("web--shop ClusterIP %s, want %s", got, want)
	}
	if err := c.Client().CoreV1().Services("nodemesh").Delete(t.Context(), "db--shop", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, settle, "the deleted shadow made again", func() bool {
		s := shadowOf(t, c, "db--shop")
		return s != nil && s.UID != db.UID
	})
	if got := shadowOf(t, c, "db--shop").Spec.ClusterIP; got != db.Spec.ClusterIP {
		t.Errorf("db--shop made again with ClusterIP %s, was %s", got, db.Spec.ClusterIP)
	}

	t.Log("the ExternalName Service is reported, once, as an Event and in the status API")
	waitUntil(t, settle, "a NotMeshable event", func() bool {
		ev, err := c.Client().CoreV1().Events("shop").List(t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.name=external"})
		return err == nil && len(ev.Items) == 1 && ev.Items[0].Reason == "NotMeshable"
	})
	var status controller.ErrorsStatus
	getJSON(t, first.URL+controller.PathErrors, &status)
	if len(status.Errors) != 1 || status.Errors[0].Name != "external" || status.SMI == nil || status.SMI.Enabled() {
		t.Errorf("status errors = %+v", status)
	}

	t.Log("a restart with nothing changed keeps every shadow as it is and writes nothing")
	waitUntil(t, settle, "the first replica's writes to finish", func() bool { return first.metric(t, "nodemesh_controller_shadow_backlog") == 0 })
	before := shadowVersions(t, c)
	first.Stop()
	second := startController(t, c, nil)
	waitUntil(t, settle, "the new replica to lead", func() bool { return second.Readiness().Leader.Leading })
	time.Sleep(time.Second) // writes, if any, would have happened by now
	if n := second.shadowWrites(t); n != 0 {
		t.Errorf("the restarted controller wrote %v times", n)
	}
	if after := shadowVersions(t, c); !maps2Equal(before, after) {
		t.Errorf("shadow resourceVersions changed across the restart: %v -> %v", before, after)
	}

	t.Log("a hand-edited shadow is put back; a deleted source takes its shadow along")
	edited := shadowOf(t, c, "db--shop")
	edited.Spec.Ports[0].TargetPort = intstr.FromInt32(12345)
	if _, err := c.Client().CoreV1().Services("nodemesh").Update(t.Context(), edited, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Client().CoreV1().Services("shop").Delete(t.Context(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, settle, "the edit undone and the orphan deleted", func() bool {
		db := shadowOf(t, c, "db--shop")
		return shadowOf(t, c, "web--shop") == nil && db != nil && portsOf(db)[0] == "tcp-5432 5432/TCP->10000"
	})
	wantPorts(t, shadowOf(t, c, "db--shop"), "tcp-5432 5432/TCP->10000", "udp-53 53/UDP->11000")
}

// TestControllerTwoReplicas: two replicas serve the same table; one leads,
// and when it stops the other takes over at once.
func TestControllerTwoReplicas(t *testing.T) {
	c := harness.Start(t)
	createNamespaces(t, c, "nodemesh", "shop")
	createService(t, c, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}},
	})
	a := startController(t, c, nil)
	b := startController(t, c, nil)
	waitUntil(t, settle, "one leader", func() bool { return a.Readiness().Leader.Leading != b.Readiness().Leader.Leading })
	leader, follower := a, b
	if b.Readiness().Leader.Leading {
		leader, follower = b, a
	}
	waitUntil(t, settle, "the shadow", func() bool { return shadowOf(t, c, "web--shop") != nil })
	t.Cleanup(func() {
		if t.Failed() {
			ja, _ := json.Marshal(leader.Server().Current())
			jb, _ := json.Marshal(follower.Server().Current())
			t.Logf("leader table: %s\nfollower table: %s", ja, jb)
		}
	})
	waitUntil(t, settle, "both replicas to serve the shadow's ClusterIP", func() bool {
		if !sameTable(leader, follower) {
			return false
		}
		for _, r := range leader.Server().Current().HTTP {
			if r.Service.Name == "web" && len(r.Hosts) == 2 { // web.shop.mesh and the ClusterIP
				return true
			}
		}
		return false
	})
	if n := follower.shadowWrites(t); n != 0 {
		t.Errorf("the follower wrote %v times", n)
	}
	leader.Stop()
	waitUntil(t, 5*time.Second, "the follower to take over", func() bool { return follower.Readiness().Leader.Leading })
}

// sameTable compares what two replicas serve, ignoring the version number
// (each replica numbers its own versions).
func sameTable(a, b *meshController) bool {
	ta, tb := a.Server().Current(), b.Server().Current()
	if ta == nil || tb == nil {
		return false
	}
	ca, cb := *ta, *tb
	ca.Version, cb.Version = 0, 0
	ja, _ := json.Marshal(ca)
	jb, _ := json.Marshal(cb)
	return string(ja) == string(jb)
}

func wantPorts(t *testing.T, svc *corev1.Service, want ...string) {
	t.Helper()
	if got := portsOf(svc); !slices.Equal(got, want) {
		t.Errorf("%s ports = %v, want %v", svc.Name, got, want)
	}
}

// portsOf renders a Service's ports "name port/proto->target", sorted.
func portsOf(svc *corev1.Service) []string {
	var out []string
	for _, p := range svc.Spec.Ports {
		out = append(out, fmt.Sprintf("%s %d/%s->%s", p.Name, p.Port, p.Protocol, p.TargetPort.String()))
	}
	slices.Sort(out)
	return out
}

func shadowVersions(t *testing.T, c *harness.Cluster) map[string]string {
	t.Helper()
	l, err := c.Client().CoreV1().Services("nodemesh").List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range l.Items {
		out[s.Name] = s.ResourceVersion
	}
	return out
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func getJSON(t *testing.T, url string, into any) {
	t.Helper()
	resp, err := plainHTTP.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

var (
	_ = specsv1alpha4.HTTPRouteGroup{}
	_ = splitv1alpha4.TrafficSplit{}
)
