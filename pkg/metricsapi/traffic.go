package metricsapi

import (
	"cmp"
	"path"
	"slices"
	"strings"
	"time"

	smimetrics "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/metrics/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/pkg/edgestats"
)

// resourceKinds are the resources this API serves, by their URL name, with
// the Kind their TrafficMetrics describe. Workload kinds are the prefixes
// of the proxy's source_workload label ("Deployment/web").
var resourceKinds = map[string]string{
	"pods":         "Pod",
	"deployments":  "Deployment",
	"statefulsets": "StatefulSet",
	"daemonsets":   "DaemonSet",
	"services":     "Service",
	"namespaces":   "Namespace",
}

// resourceNames lists resourceKinds' keys in discovery order.
var resourceNames = []string{"daemonsets", "deployments", "namespaces", "pods", "services", "statefulsets"}

// The metrics of every TrafficMetrics, as the SMI spec names them.
const (
	metricP50     = "p50_response_latency"
	metricP90     = "p90_response_latency"
	metricP99     = "p99_response_latency"
	metricSuccess = "success_count"
	metricFailure = "failure_count"
)

// unknownRef is the edge resource of clients the proxies could not name
// (not a pod of the mesh: a node, a hostNetwork pod).
var unknownRef = corev1.ObjectReference{Kind: "Unknown", Name: edgestats.Unknown}

// view is one window of edge counts, ready to be cut by resource.
type view struct {
	edges    map[edgestats.Edge]*edgestats.Counts
	interval smimetrics.Interval
}

// selects reports whether edge e counts for the resource kind/ns/name and,
// when it does, the resource at the other end of the edge and the edge's
// direction. Workloads (pods, deployments, statefulsets, daemonsets) are
// measured as clients: what they sent, edges "to" destination services.
// Services and namespaces are measured as servers: what they received,
// edges "from" the sending workloads (namespaces: from source namespaces).
// An empty name selects every resource of the kind (lists).
func selects(e edgestats.Edge, kind, ns, name string) (self, other corev1.ObjectReference, dir smimetrics.Direction, ok bool) {
	switch kind {
	case "Service":
		self = corev1.ObjectReference{Kind: kind, Namespace: e.Namespace, Name: e.Service}
		ok = e.Namespace == ns || ns == ""
		return self, sourceRef(e), smimetrics.From, ok && (name == "" || name == e.Service)
	case "Namespace":
		self = corev1.ObjectReference{Kind: kind, Name: e.Namespace}
		other = corev1.ObjectReference{Kind: kind, Name: e.SourceNamespace}
		if e.SourceNamespace == edgestats.Unknown {
			other = unknownRef
		}
		return self, other, smimetrics.From, name == "" || name == e.Namespace
	}
	wkind, wname, found := strings.Cut(e.SourceWorkload, "/")
	if !found || wkind != kind || (ns != "" && e.SourceNamespace != ns) || (name != "" && wname != name) {
		return self, other, "", false
	}
	self = corev1.ObjectReference{Kind: kind, Namespace: e.SourceNamespace, Name: wname}
	other = corev1.ObjectReference{Kind: "Service", Namespace: e.Namespace, Name: e.Service}
	return self, other, smimetrics.To, true
}

// sourceRef is the resource that sent the traffic of e.
func sourceRef(e edgestats.Edge) corev1.ObjectReference {
	kind, name, found := strings.Cut(e.SourceWorkload, "/")
	if !found || e.SourceNamespace == edgestats.Unknown {
		return unknownRef
	}
	return corev1.ObjectReference{Kind: kind, Namespace: e.SourceNamespace, Name: name}
}

// resources sums the window per resource of kind (in ns, named name when
// set): one TrafficMetrics each, sorted by namespace and name.
func (v *view) resources(kind, ns, name string) []*smimetrics.TrafficMetrics {
	sums := map[corev1.ObjectReference]*edgestats.Counts{}
	for e, c := range v.edges {
		self, _, _, ok := selects(e, kind, ns, name)
		if ok {
			sums[self] = merged(sums[self], c)
		}
	}
	out := make([]*smimetrics.TrafficMetrics, 0, len(sums))
	for ref, c := range sums {
		out = append(out, v.trafficMetrics(ref, nil, c))
	}
	sortMetrics(out)
	return out
}

// edgesOf sums the window per edge of one resource: one TrafficMetrics per
// resource at the other end, sorted.
func (v *view) edgesOf(kind, ns, name string) []*smimetrics.TrafficMetrics {
	type edgeKey struct {
		other corev1.ObjectReference
		dir   smimetrics.Direction
	}
	sums := map[edgeKey]*edgestats.Counts{}
	var self corev1.ObjectReference
	for e, c := range v.edges {
		s, other, dir, ok := selects(e, kind, ns, name)
		if ok {
			self = s
			k := edgeKey{other, dir}
			sums[k] = merged(sums[k], c)
		}
	}
	out := make([]*smimetrics.TrafficMetrics, 0, len(sums))
	for k, c := range sums {
		out = append(out, v.trafficMetrics(self, &smimetrics.Edge{Direction: k.dir, Resource: ptr(k.other)}, c))
	}
	sortMetrics(out)
	return out
}

func merged(acc, c *edgestats.Counts) *edgestats.Counts {
	if acc == nil {
		acc = &edgestats.Counts{}
	}
	add(acc, c)
	return acc
}

// trafficMetrics builds one TrafficMetrics. Latency quantiles are left out
// when there was no request in the window: a 0 ms p99 would be a lie.
func (v *view) trafficMetrics(ref corev1.ObjectReference, edge *smimetrics.Edge, c *edgestats.Counts) *smimetrics.TrafficMetrics {
	link := selfLink(ref)
	if edge != nil {
		link = path.Join(link, "edges")
	}
	interval := v.interval
	tm := &smimetrics.TrafficMetrics{
		TypeMeta:   metav1.TypeMeta{Kind: "TrafficMetrics", APIVersion: smimetrics.APIVersion},
		ObjectMeta: metav1.ObjectMeta{Name: ref.Name, Namespace: ref.Namespace, SelfLink: link, CreationTimestamp: interval.Timestamp},
		Interval:   &interval,
		Resource:   ptr(ref),
		Edge:       edge,
	}
	if c.Requests > 0 {
		for _, q := range []struct {
			name string
			q    float64
		}{{metricP50, 0.5}, {metricP90, 0.9}, {metricP99, 0.99}} {
			m := &smimetrics.Metric{Name: q.name, Unit: smimetrics.MilliSeconds}
			m.Set(edgestats.Quantile(q.q, sortedBuckets(c.Buckets)) * 1000)
			tm.Metrics = append(tm.Metrics, m)
		}
	}
	failures := min(c.Failures, c.Requests)
	success := &smimetrics.Metric{Name: metricSuccess}
	success.Set(c.Requests - failures)
	failure := &smimetrics.Metric{Name: metricFailure}
	failure.Set(failures)
	tm.Metrics = append(tm.Metrics, success, failure)
	return tm
}

func sortedBuckets(b []edgestats.Bucket) []edgestats.Bucket {
	b = slices.Clone(b)
	slices.SortFunc(b, func(x, y edgestats.Bucket) int { return cmp.Compare(x.UpperBound, y.UpperBound) })
	return b
}

// selfLink is the API path of a resource's TrafficMetrics.
func selfLink(ref corev1.ObjectReference) string {
	res := ""
	for r, k := range resourceKinds {
		if k == ref.Kind {
			res = r
		}
	}
	if ref.Namespace == "" || res == "namespaces" {
		return path.Join("/apis", smimetrics.APIVersion, res, ref.Name)
	}
	return path.Join("/apis", smimetrics.APIVersion, "namespaces", ref.Namespace, res, ref.Name)
}

func sortMetrics(list []*smimetrics.TrafficMetrics) {
	key := func(t *smimetrics.TrafficMetrics) []string {
		k := []string{t.Resource.Namespace, t.Resource.Name}
		if t.Edge != nil {
			k = append(k, string(t.Edge.Direction), t.Edge.Resource.Kind, t.Edge.Resource.Namespace, t.Edge.Resource.Name)
		}
		return k
	}
	slices.SortFunc(list, func(a, b *smimetrics.TrafficMetrics) int { return slices.Compare(key(a), key(b)) })
}

// newInterval is the Interval of a window ending at the newest scrape.
func newInterval(latest time.Time, w time.Duration) smimetrics.Interval {
	return smimetrics.Interval{Timestamp: metav1.NewTime(latest), Window: metav1.Duration{Duration: w}}
}

func ptr[T any](v T) *T { return &v }
