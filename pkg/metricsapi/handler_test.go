package metricsapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	smimetrics "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/metrics/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/pkg/edgestats"
)

type fakeAuthn struct{}

func (fakeAuthn) authenticate(r *http.Request) (*user, error) {
	if u := r.Header.Get("X-Test-User"); u != "" {
		return &user{Name: u}, nil
	}
	return nil, errUnauthenticated
}

// fakeAuthz lets "admin" do anything and "viewer" get deployments only.
type fakeAuthz struct{ asked []attributes }

func (z *fakeAuthz) authorize(_ context.Context, u *user, a attributes) (bool, string, error) {
	z.asked = append(z.asked, a)
	return u.Name == "admin" || (u.Name == "viewer" && a.Resource == "deployments" && a.Verb == "get"), "", nil
}

// testHandler serves a window with client -> web (37 requests, 1 failed)
// and an unknown source -> web (3 requests).
func testHandler(t *testing.T) (*handler, *fakeAuthz) {
	t.Helper()
	now := time.Unix(10000, 0)
	proxies := fakeProxies{"node-a": proxyText(float64(now.Unix()-5), 36, 1, 30, 37) + `nodemesh_proxy_edge_http_requests_total{backend="web-v2",code_class="2xx",namespace="shop",service="web",source_namespace="unknown",source_service_account="unknown",source_workload="unknown"} 3
nodemesh_proxy_edge_http_requests_total{backend="none",code_class="4xx",namespace="shop",service="web",source_namespace="ops",source_service_account="default",source_workload="Pod/debug"} 2
`}
	c := &Collector{Targets: proxies.targets, Interval: time.Second, MaxWindow: time.Minute, Log: quiet, now: func() time.Time { return now }}
	c.Scrape(context.Background())
	z := &fakeAuthz{}
	return &handler{collector: c, authn: fakeAuthn{}, authz: z, defaultWindow: 30 * time.Second, maxWindow: time.Minute, log: quiet}, z
}

func get(h http.Handler, user, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if user != "" {
		req.Header.Set("X-Test-User", user)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// metricValues flattens a TrafficMetrics' metrics to name -> value string.
func metricValues(tm *smimetrics.TrafficMetrics) map[string]string {
	out := map[string]string{}
	for _, m := range tm.Metrics {
		out[m.Name] = m.Value.String()
	}
	return out
}

func TestDeploymentEdgesListTheDestination(t *testing.T) {
	h, z := testHandler(t)
	w := get(h, "admin", "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/deployments/client/edges")
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var list smimetrics.TrafficMetricsList
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	if list.Kind != "TrafficMetricsList" || len(list.Items) != 1 {
		t.Fatalf("want one edge: %s", w.Body)
	}
	e := list.Items[0]
	if e.Edge == nil || e.Edge.Direction != smimetrics.To || e.Edge.Resource.Kind != "Service" || e.Edge.Resource.Namespace != "shop" || e.Edge.Resource.Name != "web" {
		t.Errorf("edge %+v", e.Edge)
	}
	if e.Resource.Kind != "Deployment" || e.Resource.Name != "client" || e.Window.Duration != 30*time.Second {
		t.Errorf("resource %+v window %v", e.Resource, e.Window)
	}
	got := metricValues(e)
	if got["success_count"] != "36" || got["failure_count"] != "1" || got["p50_response_latency"] == "" || got["p99_response_latency"] == "" {
		t.Errorf("metrics %v", got)
	}
	if a := z.asked[0]; a != (attributes{Verb: "get", Namespace: "shop", Resource: "deployments", Subresource: "edges", Name: "client"}) {
		t.Errorf("authorized %+v", a)
	}
}

func TestServiceIsMeasuredAsServerFromEverySource(t *testing.T) {
	h, _ := testHandler(t)
	var tm smimetrics.TrafficMetrics
	w := get(h, "admin", "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/services/web")
	if err := json.Unmarshal(w.Body.Bytes(), &tm); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if got := metricValues(&tm); got["success_count"] != "41" || got["failure_count"] != "1" {
		t.Errorf("service metrics %v, want 36+3+2 successes and 1 failure", got)
	}
	var edges smimetrics.TrafficMetricsList
	w = get(h, "admin", "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/services/web/edges")
	if err := json.Unmarshal(w.Body.Bytes(), &edges); err != nil {
		t.Fatal(err)
	}
	var from []string
	for _, e := range edges.Items {
		from = append(from, string(e.Edge.Direction)+" "+e.Edge.Resource.Kind+"/"+e.Edge.Resource.Namespace+"/"+e.Edge.Resource.Name)
	}
	if strings.Join(from, ", ") != "from Deployment/shop/client, from Pod/ops/debug, from Unknown//unknown" {
		t.Errorf("edges: %v", from)
	}
}

func TestListsNamespacesAndDiscovery(t *testing.T) {
	h, _ := testHandler(t)
	var list smimetrics.TrafficMetricsList
	w := get(h, "admin", "/apis/metrics.smi-spec.io/v1alpha1/namespaces")
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || len(list.Items) != 1 || list.Items[0].Resource.Name != "shop" {
		t.Errorf("namespaces: %s", w.Body)
	}
	w = get(h, "admin", "/apis/metrics.smi-spec.io/v1alpha1/deployments")
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || len(list.Items) != 1 || list.Items[0].Resource.Name != "client" {
		t.Errorf("deployments in every namespace: %s", w.Body)
	}
	var rl metav1.APIResourceList
	w = get(h, "viewer", "/apis/metrics.smi-spec.io/v1alpha1")
	if err := json.Unmarshal(w.Body.Bytes(), &rl); err != nil || rl.GroupVersion != "metrics.smi-spec.io/v1alpha1" || len(rl.APIResources) != 12 {
		t.Errorf("discovery (any authenticated user): %d %s", w.Code, w.Body)
	}
}

func TestRefusals(t *testing.T) {
	h, _ := testHandler(t)
	for _, tc := range []struct {
		user, path string
		code       int
	}{
		{"", "/apis/metrics.smi-spec.io/v1alpha1", http.StatusUnauthorized},
		{"", "/healthz", http.StatusOK},
		{"viewer", "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/deployments/client", http.StatusOK},
		{"viewer", "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/services/web", http.StatusForbidden},
		{"admin", "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/replicasets/x", http.StatusNotFound},
		{"admin", "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/deployments/client/logs", http.StatusNotFound},
		{"admin", "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/deployments/client?window=2h", http.StatusBadRequest},
		{"admin", "/apis", http.StatusNotFound},
	} {
		if w := get(h, tc.user, tc.path); w.Code != tc.code {
			t.Errorf("%s %s: %d, want %d: %s", tc.user, tc.path, w.Code, tc.code, w.Body)
		}
	}
}

func TestNothingScrapedYetIsUnavailable(t *testing.T) {
	c := &Collector{Targets: func(context.Context) (_ []edgestats.Target, _ error) { return nil, errors.New("no") }, Log: quiet}
	h := &handler{collector: c, authn: fakeAuthn{}, authz: &fakeAuthz{}, defaultWindow: time.Second, maxWindow: time.Second, log: quiet}
	if w := get(h, "admin", "/apis/metrics.smi-spec.io/v1alpha1/namespaces"); w.Code != http.StatusServiceUnavailable {
		t.Errorf("%d %s", w.Code, w.Body)
	}
}
