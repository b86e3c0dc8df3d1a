package controller

import (
	"strings"
	"sync"

	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/nodemesh/nodemesh/pkg/snapshot"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

// eventReporter turns the topology's per-object errors into Kubernetes
// Events on the objects at fault. An error is reported once, when it first
// appears, not on every rebuild; it is reported again only after it went
// away and came back (or after a leadership change).
type eventReporter struct {
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	metrics     *metrics

	mu       sync.Mutex
	reported map[topology.ObjectError]bool
}

func newEventReporter(kube kubernetes.Interface, m *metrics) *eventReporter {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	return &eventReporter{
		broadcaster: b,
		recorder:    b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "nodemesh-controller"}),
		metrics:     m,
		reported:    map[topology.ObjectError]bool{},
	}
}

func (r *eventReporter) shutdown() { r.broadcaster.Shutdown() }

// reset forgets what was reported, so a new leader reports every current
// error once.
func (r *eventReporter) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reported = map[topology.ObjectError]bool{}
}

// report emits an Event for each error of topo not reported before.
func (r *eventReporter) report(topo *topology.Topology, snap *snapshot.Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := make(map[topology.ObjectError]bool, len(topo.Errors))
	var refs map[objectKey]*corev1.ObjectReference
	for _, e := range topo.Errors {
		now[e] = true
		if r.reported[e] {
			continue
		}
		if refs == nil {
			refs = objectRefs(snap)
		}
		ref := refs[objectKey{e.Kind, types.NamespacedName{Namespace: e.Namespace, Name: e.Name}}]
		if ref == nil {
			ref = &corev1.ObjectReference{Kind: e.Kind, Namespace: e.Namespace, Name: e.Name, APIVersion: apiVersionOf(e.Kind)}
		}
		r.recorder.Event(ref, corev1.EventTypeWarning, reasonFor(e), e.Message)
		r.metrics.eventsEmitted.Inc()
	}
	r.reported = now
}

type objectKey struct {
	kind string
	name types.NamespacedName
}

// objectRefs indexes the snapshot's objects that errors can be about, so an
// Event carries the object's UID.
func objectRefs(snap *snapshot.Snapshot) map[objectKey]*corev1.ObjectReference {
	out := map[objectKey]*corev1.ObjectReference{}
	add := func(kind string, m metav1.Object) {
		out[objectKey{kind, types.NamespacedName{Namespace: m.GetNamespace(), Name: m.GetName()}}] = &corev1.ObjectReference{
			Kind: kind, APIVersion: apiVersionOf(kind), Namespace: m.GetNamespace(), Name: m.GetName(),
			UID: m.GetUID(), ResourceVersion: m.GetResourceVersion(),
		}
	}
	for _, o := range snap.Services {
		add(topology.KindService, o)
	}
	for _, p := range snap.Pods {
		add(topology.KindPod, p.GetObjectMeta())
	}
	for _, o := range snap.TrafficSplits {
		add(topology.KindTrafficSplit, o)
	}
	for _, o := range snap.HTTPRouteGroups {
		add(topology.KindHTTPRouteGroup, o)
	}
	for _, o := range snap.TCPRoutes {
		add(topology.KindTCPRoute, o)
	}
	for _, o := range snap.UDPRoutes {
		add(topology.KindUDPRoute, o)
	}
	for _, o := range snap.TrafficTargets {
		add(topology.KindTrafficTarget, o)
	}
	return out
}

// apiVersionOf gives the API version an Event's involvedObject names. A
// TrafficSplit read in an older version is still named as v1alpha4; the
// apiserver serves every version of one object.
func apiVersionOf(kind string) string {
	switch kind {
	case topology.KindTrafficSplit:
		return splitv1alpha4.SchemeGroupVersion.String()
	case topology.KindHTTPRouteGroup, topology.KindTCPRoute, topology.KindUDPRoute:
		return "specs.smi-spec.io/v1alpha4"
	case topology.KindTrafficTarget:
		return "access.smi-spec.io/v1alpha3"
	}
	return "v1"
}

// reasonFor gives an Event its short, machine-readable reason.
func reasonFor(e topology.ObjectError) string {
	m := strings.ToLower(e.Message)
	switch {
	case strings.Contains(m, "not meshable"):
		return "NotMeshable"
	case strings.Contains(m, "no free proxy port"):
		return "ProxyPortsExhausted"
	case strings.HasPrefix(m, "annotation "):
		return "InvalidAnnotation"
	}
	return "Invalid" + e.Kind
}
