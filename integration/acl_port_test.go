package integration_test

import (
	"testing"

	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nodemesh/nodemesh/integration/harness"
	"github.com/nodemesh/nodemesh/pkg/controller"
)

// TestTrafficTargetDestinationPortNarrows is issue 5's "destination.port
// narrows the destination's ports" on a real apiserver with nodemesh's SMI
// CRDs: a TrafficTarget written as v1alpha3 with destination.port (kept by
// the CRD as a nodemesh extension) lets shop/client reach the db pods on
// that port only. The db Service has two TCP ports on two pod ports; the
// client echoes through the proxy on the allowed one and is closed at
// accept on the other.
func TestTrafficTargetDestinationPortNarrows(t *testing.T) {
	c := harness.Start(t)
	installSMICRDs(t, c)
	createNamespaces(t, c, "nodemesh", "shop")
	createServiceAccounts(t, c, "shop", "db", "client")
	node := c.AddNode(t, "node-a")
	c.StartPod(t, harness.PodSpec{Namespace: "shop", Name: "db-0", Node: "node-a", ServiceAccount: "db", Labels: map[string]string{"app": "db"},
		Ports: []harness.Port{{Name: "sql", Port: 7, Server: harness.ServerTCPEcho}, {Name: "admin", Port: 9, Server: harness.ServerTCPEcho}}})
	clientPod := c.StartPod(t, harness.PodSpec{Namespace: "shop", Name: "client-0", Node: "node-a", ServiceAccount: "client"})
	createService(t, c, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db", Annotations: map[string]string{"nodemesh.io/traffic-type": "tcp"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "db"}, Ports: []corev1.ServicePort{
			{Name: "sql", Port: 5432, TargetPort: intstr.FromString("sql")},
			{Name: "admin", Port: 9000, TargetPort: intstr.FromString("admin")},
		}},
	})
	createSMI(t, c, nil, []*specsv1alpha4.TCPRoute{{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "all"}}}, nil, nil)
	if _, stderr, err := kubectl(t, c, `
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {namespace: shop, name: client-to-db-sql}
spec:
  destination: {kind: ServiceAccount, name: db, port: 7}
  rules: [{kind: TCPRoute, name: all}]
  sources: [{kind: ServiceAccount, name: client}]
`, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, stderr)
	}

	ctrl := startController(t, c, func(cfg *controller.Config) { cfg.ACL = true })
	if r := ctrl.Readiness(); r.SMI == nil || r.SMI.Status.Access != "v1alpha2" {
		t.Errorf("the controller reads TrafficTargets as %+v, want v1alpha2 (the SDK type with the port)", r.SMI)
	}
	proxy := startProxy(t, "node-a", ctrl.URL)
	logTableOnFailure(t, proxy)
	client := newMeshClient(t, clientPod, node)

	var sql, admin int32 // proxy ports of the two service ports
	waitUntil(t, settle, "shadow db--shop", func() bool {
		s := shadowOf(t, c, "db--shop")
		if s == nil {
			return false
		}
		for _, p := range s.Spec.Ports {
			switch p.Port {
			case 5432:
				sql = p.TargetPort.IntVal
			case 9000:
				admin = p.TargetPort.IntVal
			}
		}
		return sql != 0 && admin != 0
	})
	waitUntil(t, settle, "shop/client to echo on db's sql port", func() bool {
		got, err := client.tcpEcho(sql, "select")
		return err == nil && got == "select"
	})
	if got, err := client.tcpEcho(admin, "admin"); err == nil {
		t.Errorf("db's admin port (pod port 9) echoed %q; the TrafficTarget allows pod port 7 only", got)
	}
}
