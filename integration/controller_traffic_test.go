package integration_test

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nodemesh/nodemesh/integration/harness"
)

// TestControllerTrafficThroughProxy is the mesh end to end on one node: the
// controller (in this process) watches a real apiserver, and a real
// `nodemesh proxy` process routes HTTP by mesh name, TCP and UDP by the
// proxy ports the controller allocated, then follows a TrafficSplit
// canary, a weight change, and a header A/B match.
//
// Clients would reach the proxy through the shadow Services' ClusterIPs,
// which needs kube-proxy (added to the harness by the multi-node issue).
// Until then the tests send to the proxy's ports on 127.0.0.1 directly, with
// the Host header a client would send.
func TestControllerTrafficThroughProxy(t *testing.T) {
	c := harness.Start(t)
	installSMICRDs(t, c)
	createNamespaces(t, c, "nodemesh", "shop")
	c.AddNode(t, "node-a")
	c.StartPod(t, harness.PodSpec{Namespace: "shop", Name: "web-v1", Node: "node-a", Labels: map[string]string{"app": "web", "version": "v1"}})
	c.StartPod(t, harness.PodSpec{Namespace: "shop", Name: "web-v2", Node: "node-a", Labels: map[string]string{"app": "web", "version": "v2"}})
	c.StartPod(t, harness.PodSpec{Namespace: "shop", Name: "echo", Node: "node-a", Labels: map[string]string{"app": "echo"}})
	httpPort := []corev1.ServicePort{{Name: "web", Port: 80, TargetPort: intstr.FromString("http")}}
	// The root "web" selects v1 only, so "no split" and "no match" read as v1.
	for name, sel := range map[string]map[string]string{
		"web":    {"app": "web", "version": "v1"},
		"web-v1": {"app": "web", "version": "v1"},
		"web-v2": {"app": "web", "version": "v2"},
	} {
		createService(t, c, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}, Spec: corev1.ServiceSpec{Selector: sel, Ports: httpPort}})
	}
	createService(t, c, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "echo", Annotations: map[string]string{"nodemesh.io/traffic-type": "tcp"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "echo"}, Ports: []corev1.ServicePort{
			{Name: "tcp", Port: 7, TargetPort: intstr.FromString("tcp-echo")},
			{Name: "udp", Port: 7, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("udp-echo")},
		}},
	})
	ctrl := startController(t, c, nil)
	startProxy(t, "node-a", ctrl.URL)

	t.Log("HTTP by mesh name reaches the root service's pod")
	waitUntil(t, settle, "web.shop.mesh to answer through the proxy", func() bool {
		pod, err := viaProxy("web.shop.mesh", nil)
		return err == nil && pod == "web-v1"
	})

	t.Log("TCP and UDP reach the echo pod through the proxy ports in the shadow service")
	waitUntil(t, settle, "the echo shadow", func() bool { return shadowOf(t, c, "echo--shop") != nil })
	for _, p := range shadowOf(t, c, "echo--shop").Spec.Ports {
		network := map[corev1.Protocol]string{corev1.ProtocolTCP: "tcp", corev1.ProtocolUDP: "udp"}[p.Protocol]
		addr := "127.0.0.1:" + strconv.Itoa(int(p.TargetPort.IntVal))
		msg := "hello over " + network
		waitUntil(t, settle, network+" echo via "+addr, func() bool {
			got, err := dialEcho(network, addr, msg)
			return err == nil && got == msg
		})
	}

	t.Log("an 80/20 TrafficSplit holds within ±5 points over 2,000 requests")
	splits := newSMIClients(t, c).split.SplitV1alpha4().TrafficSplits("shop")
	canary, err := splits.Create(t.Context(), &splitv1alpha4.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "canary"},
		Spec: splitv1alpha4.TrafficSplitSpec{Service: "web", Backends: []splitv1alpha4.TrafficSplitBackend{
			{Service: "web-v1", Weight: 80}, {Service: "web-v2", Weight: 20},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, settle, "the split to reach the proxy", func() bool {
		pod, err := viaProxy("web.shop.mesh", nil)
		return err == nil && pod == "web-v2"
	})
	counts := map[string]int{}
	for range 2000 {
		pod, err := viaProxy("web.shop.mesh", nil)
		if err != nil {
			t.Fatal(err)
		}
		counts[pod]++
	}
	if share := float64(counts["web-v2"]) / 20; share < 15 || share > 25 || counts["web-v1"]+counts["web-v2"] != 2000 {
		t.Errorf("over 2,000 requests: %v (v2 share %.1f%%), want 20%% ± 5", counts, share)
	}

	t.Log("a weight change is applied within 1 s")
	canary.Spec.Backends = []splitv1alpha4.TrafficSplitBackend{{Service: "web-v1", Weight: 0}, {Service: "web-v2", Weight: 100}}
	edited := time.Now()
	if _, err := splits.Update(t.Context(), canary, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Applied means: from then on every request goes to v2. Twenty in a row
	// under the old 80/20 weights has a chance of 0.2^20.
	var appliedAt time.Time
	for run := 0; run < 20 && time.Since(edited) < 10*time.Second; {
		pod, err := viaProxy("web.shop.mesh", nil)
		if err != nil {
			t.Fatal(err)
		}
		if pod != "web-v2" {
			run = 0
			continue
		}
		if run == 0 {
			appliedAt = time.Now()
		}
		run++
	}
	if took := appliedAt.Sub(edited); appliedAt.IsZero() || took > time.Second {
		t.Errorf("the weight change took %v to apply on the proxy, want within 1s", took)
	} else {
		t.Logf("weight change applied on the proxy %v after the update", took.Round(time.Millisecond))
	}

	t.Log("a header match (A/B) sends matching requests to v2 and the rest to the root service")
	if err := splits.Delete(t.Context(), "canary", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	groups := newSMIClients(t, c).specs.SpecsV1alpha4().HTTPRouteGroups("shop")
	if _, err := groups.Create(t.Context(), &specsv1alpha4.HTTPRouteGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "ab"},
		Spec: specsv1alpha4.HTTPRouteGroupSpec{Matches: []specsv1alpha4.HTTPMatch{
			{Name: "beta-users", Headers: map[string]string{"X-Version": "^v2$"}},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := splits.Create(t.Context(), &splitv1alpha4.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "ab"},
		Spec: splitv1alpha4.TrafficSplitSpec{
			Service:  "web",
			Matches:  []corev1.TypedLocalObjectReference{{Kind: "HTTPRouteGroup", Name: "ab"}},
			Backends: []splitv1alpha4.TrafficSplitBackend{{Service: "web-v2", Weight: 100}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	beta := http.Header{"X-Version": {"v2"}}
	waitUntil(t, settle, "the A/B split to reach the proxy", func() bool {
		withHeader, err1 := viaProxy("web.shop.mesh", beta)
		without, err2 := viaProxy("web.shop.mesh", nil)
		return err1 == nil && err2 == nil && withHeader == "web-v2" && without == "web-v1"
	})
	got := map[string]int{}
	for i := range 100 {
		h := http.Header(nil)
		want := "web-v1"
		if i%2 == 0 {
			h, want = beta, "web-v2"
		}
		pod, err := viaProxy("web.shop.mesh", h)
		if err != nil {
			t.Fatal(err)
		}
		got[fmt.Sprintf("%s -> %s", want, pod)]++
	}
	if got["web-v2 -> web-v2"] != 50 || got["web-v1 -> web-v1"] != 50 {
		t.Errorf("A/B routing (wanted -> got): %v", got)
	}
}
