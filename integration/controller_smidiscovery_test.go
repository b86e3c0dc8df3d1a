package integration_test

import (
	"strconv"
	"testing"
	"time"

	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/integration/harness"
	"github.com/nodemesh/nodemesh/pkg/controller"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

// TestControllerFollowsSMICRDs: a controller started before the SMI CRDs
// exist runs without SMI, picks the CRDs up when they are installed (its
// SMI informers then follow edits), and turns SMI off again when they are
// removed, all without a restart.
func TestControllerFollowsSMICRDs(t *testing.T) {
	c := harness.Start(t)
	createNamespaces(t, c, "nodemesh", "shop")
	for _, name := range []string{"web", "web-v1", "web-v2"} {
		createService(t, c, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		})
	}
	m := startController(t, c, func(cfg *controller.Config) { cfg.SMIDiscoveryInterval = time.Second })

	var st controller.ErrorsStatus
	getJSON(t, m.URL+controller.PathErrors, &st)
	if st.SMI == nil || st.SMI.Enabled() {
		t.Fatalf("before the CRDs: SMI %+v, want discovered and off", st.SMI)
	}

	t.Log("the CRDs are installed and a TrafficSplit created: the controller reads it without a restart")
	installSMICRDs(t, c)
	splits := newSMIClients(t, c).split.SplitV1alpha4().TrafficSplits("shop")
	var ts *splitv1alpha4.TrafficSplit
	waitUntil(t, settle, "the TrafficSplit to be accepted by the new CRD", func() bool {
		var err error
		ts, err = splits.Create(t.Context(), &splitv1alpha4.TrafficSplit{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "canary"},
			Spec: splitv1alpha4.TrafficSplitSpec{Service: "web", Backends: []splitv1alpha4.TrafficSplitBackend{
				{Service: "web-v1", Weight: 80}, {Service: "web-v2", Weight: 20},
			}},
		}, metav1.CreateOptions{})
		return err == nil
	})
	waitUntil(t, settle, "the split in the topology", func() bool {
		return splitWeights(m.Topology(), "canary") == "web-v1=80,web-v2=20"
	})
	getJSON(t, m.URL+controller.PathErrors, &st)
	if st.SMI == nil || st.SMI.Status.Split != "v1alpha4" {
		t.Errorf("after the CRDs: SMI %+v, want split v1alpha4", st.SMI)
	}

	t.Log("an edit reaches the controller through the new informers")
	ts.Spec.Backends[0].Weight, ts.Spec.Backends[1].Weight = 0, 100
	if _, err := splits.Update(t.Context(), ts, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, settle, "the edited weights in the topology", func() bool {
		return splitWeights(m.Topology(), "canary") == "web-v1=0,web-v2=100"
	})

	t.Log("the CRDs are removed: SMI goes off and the split with it")
	if _, _, err := kubectl(t, c, "", "delete", "--wait=true", "-k", repoPath(t, "smi", "crds")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, settle, "SMI off and no split in the topology", func() bool {
		var st controller.ErrorsStatus
		getJSON(t, m.URL+controller.PathErrors, &st)
		return st.SMI != nil && !st.SMI.Enabled() && splitWeights(m.Topology(), "canary") == ""
	})
}

// splitWeights gives the backends of the named split in topo as
// "service=weight,...", or "" when topo has no such active split.
func splitWeights(topo *topology.Topology, name string) string {
	if topo == nil {
		return ""
	}
	for _, s := range topo.Splits {
		if s.Name != name || !s.Active {
			continue
		}
		out := ""
		for i, b := range s.Backends {
			if i > 0 {
				out += ","
			}
			out += b.Service + "=" + strconv.Itoa(int(b.Weight))
		}
		return out
	}
	return ""
}
