package metricsapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	smimetrics "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/metrics/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/pkg/edgestats"
)

// The API group and version served.
const (
	group   = "metrics.smi-spec.io"
	version = "v1alpha1"
	// prefix is the path of the group version.
	prefix = "/apis/" + group + "/" + version
)

// handler serves metrics.smi-spec.io/v1alpha1 from a Collector's window.
type handler struct {
	collector *Collector
	authn     interface {
		authenticate(*http.Request) (*user, error)
	}
	authz interface {
		authorize(context.Context, *user, attributes) (bool, string, error)
	}
	defaultWindow time.Duration
	maxWindow     time.Duration
	log           *slog.Logger
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz", "/livez", "/readyz":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
		return
	}
	if r.Method != http.MethodGet {
		status(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed, "only get and list are served")
		return
	}
	u, err := h.authn.authenticate(r)
	if err != nil {
		status(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, err.Error())
		return
	}
	p := strings.TrimSuffix(r.URL.Path, "/")
	switch p {
	case "/apis":
		// No aggregated (v2) discovery: the aggregator then falls back to
		// this group version's APIResourceList, which is all there is.
		status(w, http.StatusNotFound, metav1.StatusReasonNotFound, "not found")
		return
	case "/apis/" + group:
		writeJSON(w, http.StatusOK, apiGroup())
		return
	case prefix:
		writeJSON(w, http.StatusOK, resourceList())
		return
	}
	rest, ok := strings.CutPrefix(p, prefix+"/")
	if !ok {
		status(w, http.StatusNotFound, metav1.StatusReasonNotFound, "not found")
		return
	}
	q, ok := parsePath(strings.Split(rest, "/"))
	if !ok {
		status(w, http.StatusNotFound, metav1.StatusReasonNotFound, "no such resource: "+rest)
		return
	}
	window := h.defaultWindow
	if v := r.URL.Query().Get("window"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > h.maxWindow {
			status(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "window: want a duration up to "+h.maxWindow.String())
			return
		}
		window = d
	}
	allowed, reason, err := h.authz.authorize(r.Context(), u, q.attributes())
	if err != nil {
		h.log.Warn("authorization failed", "user", u.Name, "error", err)
		status(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, "authorization failed")
		return
	}
	if !allowed {
		msg := u.Name + " may not " + q.attributes().Verb + " " + q.resource + " in " + group
		if reason != "" {
			msg += ": " + reason
		}
		status(w, http.StatusForbidden, metav1.StatusReasonForbidden, msg)
		return
	}
	edges, latest := h.collector.Window(window)
	if latest.IsZero() {
		status(w, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, "no proxy scraped yet")
		return
	}
	writeJSON(w, http.StatusOK, q.answer(&view{edges: edges, interval: newInterval(latest, window)}))
}

// query is one parsed resource path.
type query struct {
	resource  string // URL name, e.g. deployments
	namespace string // "" for namespaces and cluster-wide lists
	name      string // "" for lists
	edges     bool
}

// parsePath reads the path after the group version:
//
//	namespaces                     namespaces/<ns>        namespaces/<ns>/edges
//	<res>                          namespaces/<ns>/<res>
//	namespaces/<ns>/<res>/<name>   namespaces/<ns>/<res>/<name>/edges
func parsePath(parts []string) (query, bool) {
	known := func(r string) bool { _, ok := resourceKinds[r]; return ok && r != "namespaces" }
	switch {
	case len(parts) == 1 && parts[0] == "namespaces":
		return query{resource: "namespaces"}, true
	case len(parts) == 1 && known(parts[0]):
		return query{resource: parts[0]}, true
	case len(parts) < 2 || parts[0] != "namespaces" || parts[1] == "":
		return query{}, false
	case len(parts) == 2:
		return query{resource: "namespaces", name: parts[1]}, true
	case len(parts) == 3 && parts[2] == "edges":
		return query{resource: "namespaces", name: parts[1], edges: true}, true
	case !known(parts[2]):
		return query{}, false
	case len(parts) == 3:
		return query{resource: parts[2], namespace: parts[1]}, true
	case len(parts) == 4 && parts[3] != "":
		return query{resource: parts[2], namespace: parts[1], name: parts[3]}, true
	case len(parts) == 5 && parts[3] != "" && parts[4] == "edges":
		return query{resource: parts[2], namespace: parts[1], name: parts[3], edges: true}, true
	}
	return query{}, false
}

func (q query) attributes() attributes {
	a := attributes{Verb: "get", Namespace: q.namespace, Resource: q.resource, Name: q.name}
	if q.name == "" {
		a.Verb = "list"
	}
	if q.edges {
		a.Subresource = "edges"
	}
	return a
}

// answer is the TrafficMetrics (one resource) or TrafficMetricsList (a
// list, or a resource's edges) of q.
func (q query) answer(v *view) any {
	kind := resourceKinds[q.resource]
	ref := &corev1.ObjectReference{Kind: kind, Namespace: q.namespace, Name: q.name}
	if q.edges {
		list := smimetrics.NewTrafficMetricsList(ref, true)
		list.Items = v.edgesOf(kind, q.namespace, q.name)
		return list
	}
	items := v.resources(kind, q.namespace, q.name)
	if q.name == "" {
		list := smimetrics.NewTrafficMetricsList(ref, false)
		if q.namespace != "" {
			list.SelfLink = prefix + "/namespaces/" + q.namespace + "/" + q.resource
		}
		list.Items = items
		return list
	}
	if len(items) == 1 {
		return items[0]
	}
	// No traffic in the window: the resource's zero metrics.
	return v.trafficMetrics(*ref, nil, &edgestats.Counts{})
}

func apiGroup() *metav1.APIGroup {
	gv := metav1.GroupVersionForDiscovery{GroupVersion: group + "/" + version, Version: version}
	return &metav1.APIGroup{
		TypeMeta:         metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"},
		Name:             group,
		Versions:         []metav1.GroupVersionForDiscovery{gv},
		PreferredVersion: gv,
	}
}

func resourceList() *metav1.APIResourceList {
	l := &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: group + "/" + version}
	for _, r := range resourceNames {
		namespaced := r != "namespaces"
		l.APIResources = append(l.APIResources,
			metav1.APIResource{Name: r, Namespaced: namespaced, Kind: "TrafficMetrics", Verbs: metav1.Verbs{"get", "list"}},
			metav1.APIResource{Name: r + "/edges", Namespaced: namespaced, Kind: "TrafficMetricsList", Verbs: metav1.Verbs{"get"}},
		)
	}
	return l
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"encoding failed","code":500}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// status answers with a metav1.Status, as Kubernetes API servers do.
func status(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	writeJSON(w, code, &metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: msg, Reason: reason, Code: int32(code),
	})
}
