package controller

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	accessfake "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/access/clientset/versioned/fake"
	specsfake "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/specs/clientset/versioned/fake"
	splitfake "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/split/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/nodemesh/nodemesh/pkg/table"
)

func service(ns, name string, annotations map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Annotations: annotations},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.96.0.10", Ports: ports, Selector: map[string]string{"app": name}},
	}
}

func endpointSlice(ns, svc, portName, ip string, port int32) *discoveryv1.EndpointSlice {
	ready := true
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svc + "-abc", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
	}
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.LeaderElect = false
	cfg.APIPort = 0
	cfg.ResyncPeriod = 0
	return cfg
}

// newTestController returns a controller of testConfig on kube and empty
// SMI clientsets, not running.
func newTestController(t *testing.T, kube *fake.Clientset) *Controller {
	t.Helper()
	cfg := testConfig()
	opts, err := cfg.TopologyOptions()
	if err != nil {
		t.Fatal(err)
	}
	return newWithClients(cfg, opts, clients{kube: kube, split: splitfake.NewSimpleClientset(), specs: specsfake.NewSimpleClientset(), access: accessfake.NewSimpleClientset()})
}

// start runs a controller on the fake clients until the test ends or stop is
// called, and waits until it serves a table.
func start(t *testing.T, kube *fake.Clientset) (c *Controller, stop func()) {
	t.Helper()
	c = newTestController(t, kube)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	waitFor(t, "the controller to serve a table", func() bool { return c.Ready() && c.writer.Load() != nil })
	return c, stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func getShadow(kube *fake.Clientset, name string) *corev1.Service {
	s, err := kube.CoreV1().Services("nodemesh").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return s
}

func shadowWrites(c *Controller) float64 {
	var n float64
	for _, v := range []string{"create", "update", "delete"} {
		n += testutil.ToFloat64(c.metrics.shadowWrites.WithLabelValues(v))
	}
	return n
}

// TestShadowLifecycle drives one controller through a user's day: shadows
// appear with the right ports, a hand-edit is put back, a deleted source
// takes its shadow along, and a restart with nothing changed writes nothing.
func TestShadowLifecycle(t *testing.T) {
	kube := fake.NewClientset(
		service("default", "web", nil, corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}),
		endpointSlice("default", "web", "http", "10.244.1.5", 8080),
		service("default", "db", map[string]string{"nodemesh.io/traffic-type": "tcp"}, corev1.ServicePort{Port: 5432, Protocol: corev1.ProtocolTCP}),
		service("kube-system", "dns", nil, corev1.ServicePort{Port: 53, Protocol: corev1.ProtocolUDP}),
	)
	c, stop := start(t, kube)

	waitFor(t, "both shadows", func() bool { return getShadow(kube, "web--default") != nil && getShadow(kube, "db--default") != nil })
	web, db := getShadow(kube, "web--default"), getShadow(kube, "db--default")
	if p := web.Spec.Ports; len(p) != 1 || p[0].Port != 80 || p[0].TargetPort.IntVal != 7000 {
		t.Errorf("web shadow ports = %+v, want 80 -> 7000", p)
	}
	if p := db.Spec.Ports; len(p) != 1 || p[0].Port != 5432 || p[0].TargetPort.IntVal != 10000 {
		t.Errorf("db shadow ports = %+v, want 5432 -> 10000", p)
	}
	if getShadow(kube, "dns--kube-system") != nil {
		t.Error("a kube-system service got a shadow")
	}
	tbl := c.server.Current()
	if len(tbl.HTTP) != 1 || tbl.HTTP[0].Service != (table.ServiceRef{Namespace: "default", Name: "web"}) ||
		len(tbl.HTTP[0].Backends) != 1 || len(tbl.HTTP[0].Backends[0].Endpoints) != 1 || tbl.HTTP[0].Backends[0].Endpoints[0].Address != "10.244.1.5:8080" {
		t.Errorf("served HTTP routes = %+v", tbl.HTTP)
	}

	edited := web.DeepCopy()
	edited.Spec.Selector = map[string]string{"app": "hijacked"}
	if _, err := kube.CoreV1().Services("nodemesh").Update(context.Background(), edited, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the hand-edited selector to be put back", func() bool {
		s := getShadow(kube, "web--default")
		return s != nil && s.Spec.Selector["app.kubernetes.io/component"] == "proxy" && s.Spec.Selector["app"] == ""
	})

	if err := kube.CoreV1().Services("default").Delete(context.Background(), "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the orphan shadow to go", func() bool {
		_, err := kube.CoreV1().Services("nodemesh").Get(context.Background(), "db--default", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	stop()

	c2, _ := start(t, kube)
	waitFor(t, "the restarted controller to settle", func() bool { return c2.shadowBacklog() == 0 })
	time.Sleep(300 * time.Millisecond) // a write, if any, would be under way by now
	if n := shadowWrites(c2); n != 0 {
		t.Errorf("a restart with nothing changed wrote %v times", n)
	}
}

// TestEventsAreReportedOnce: a bad annotation gives one Warning Event on its
// Service, not one per rebuild.
func TestEventsAreReportedOnce(t *testing.T) {
	kube := fake.NewClientset(
		service("default", "web", map[string]string{"nodemesh.io/retry-attempts": "lots"}, corev1.ServicePort{Port: 80, Protocol: corev1.ProtocolTCP}),
	)
	c, _ := start(t, kube)
	events := func() []corev1.Event {
		l, _ := kube.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
		return l.Items
	}
	waitFor(t, "an event", func() bool { return len(events()) > 0 })
	// More rebuilds: unrelated services come and go.
	for _, name := range []string{"a", "b", "c"} {
		_, _ = kube.CoreV1().Services("default").Create(context.Background(), service("default", name, nil, corev1.ServicePort{Port: 80}), metav1.CreateOptions{})
	}
	waitFor(t, "the new shadows", func() bool { return getShadow(kube, "c--default") != nil })
	time.Sleep(200 * time.Millisecond)
	ev := events()
	if len(ev) != 1 || ev[0].Reason != "InvalidAnnotation" || ev[0].InvolvedObject.Name != "web" || ev[0].InvolvedObject.UID != "uid-web" || ev[0].Count > 1 {
		t.Fatalf("events = %+v, want one InvalidAnnotation on Service web", ev)
	}
	if got := testutil.ToFloat64(c.metrics.eventsEmitted); got != 1 {
		t.Errorf("events emitted = %v, want 1", got)
	}
}

// TestAPI checks every endpoint answers with JSON (or text) once ready.
func TestAPI(t *testing.T) {
	kube := fake.NewClientset(service("default", "web", nil, corev1.ServicePort{Port: 80}))
	c, _ := start(t, kube)
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	for _, tt := range []struct {
		path string
		want func(body []byte) bool
	}{
		{PathConfiguration, func(b []byte) bool { var v table.Table; return json.Unmarshal(b, &v) == nil && len(v.HTTP) == 1 }},
		{PathTopology, func(b []byte) bool { var v map[string]any; return json.Unmarshal(b, &v) == nil && v["services"] != nil }},
		{PathNodes, func(b []byte) bool { var v NodesStatus; return json.Unmarshal(b, &v) == nil && v.TableVersion != 0 }},
		{PathReadiness, func(b []byte) bool {
			var v Readiness
			return json.Unmarshal(b, &v) == nil && v.Ready && v.SMI != nil && !v.SMI.Enabled() && v.Leader.Leading
		}},
		{PathErrors, func(b []byte) bool {
			var v ErrorsStatus
			return json.Unmarshal(b, &v) == nil && v.SMI != nil && len(v.SMI.Missing) == 3
		}},
		{PathReady, func(b []byte) bool { return string(b) == "ok\n" }},
		{PathLive, func(b []byte) bool { return string(b) == "ok\n" }},
		{PathMetrics, func(b []byte) bool { return len(b) > 0 && json.Valid(b) == false }},
		{"/api/table?version=0&node=n1", func(b []byte) bool { var v table.Table; return json.Unmarshal(b, &v) == nil && v.Version != 0 }},
	} {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !tt.want(body) {
				t.Errorf("GET %s = %d %s", tt.path, resp.StatusCode, body)
			}
		})
	}
	// Profiles are served only with --pprof.
	for _, on := range []bool{false, true} {
		c.cfg.Pprof = on
		rec := httptest.NewRecorder()
		c.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/heap?debug=1", nil))
		if got := rec.Code == http.StatusOK && strings.Contains(rec.Body.String(), "heap profile"); got != on {
			t.Errorf("pprof %v: GET /debug/pprof/heap = %d", on, rec.Code)
		}
	}
}
