package dashboard

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// proxyPod is a running proxy pod whose admin port is the test server's.
func proxyPod(t *testing.T, name string, srv *httptest.Server) *corev1.Pod {
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "nodemesh", Name: name,
			Labels: map[string]string{"app.kubernetes.io/name": "nodemesh", "app.kubernetes.io/component": "proxy"}},
		Spec: corev1.PodSpec{NodeName: "node-" + name, Containers: []corev1.Container{{Name: "proxy",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 7000}, {Name: "admin", ContainerPort: int32(port)}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: u.Hostname()},
	}
}

func get(t *testing.T, h http.Handler, method, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func TestDashboard(t *testing.T) {
	var scrapes atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := scrapes.Add(1)
		fmt.Fprintf(w, "# TYPE nodemesh_proxy_table_version gauge\nnodemesh_proxy_table_version 9\n")
		fmt.Fprintf(w, "# TYPE nodemesh_proxy_edge_http_requests_total counter\n")
		fmt.Fprintf(w, "nodemesh_proxy_edge_http_requests_total{backend=\"web-v1\",code_class=\"2xx\",namespace=\"shop\",service=\"web\",source_namespace=\"shop\",source_service_account=\"c\",source_workload=\"Deployment/client\"} %d\n", 100*n)
	}))
	t.Cleanup(proxy.Close)
	kube := fake.NewClientset(proxyPod(t, "a", proxy),
		&corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "e1"}, Type: "Warning", Reason: "NotMeshable", Message: "old",
			InvolvedObject: corev1.ObjectReference{Kind: "Service", Namespace: "shop", Name: "legacy"},
			Source:         corev1.EventSource{Component: EventSource}, LastTimestamp: metav1.NewTime(time.Unix(1000, 0))},
		&corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "e2"}, Type: "Warning", Reason: "InvalidTrafficSplit", Message: "new",
			InvolvedObject: corev1.ObjectReference{Kind: "TrafficSplit", Namespace: "shop", Name: "canary"},
			Source:         corev1.EventSource{Component: EventSource}, LastTimestamp: metav1.NewTime(time.Unix(2000, 0))},
	)
	mux := http.NewServeMux()
	New(Options{Kube: kube, MeshNamespace: "nodemesh"}).Register(mux)

	for path, want := range map[string]string{"/dashboard/": "<title>nodemesh dashboard</title>", "/dashboard/app.js": "textContent", "/dashboard/style.css": "svg .edge"} {
		if code, body := get(t, mux, http.MethodGet, path); code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, body lacks %q", path, code, want)
		}
	}
	if code, _ := get(t, mux, http.MethodPost, PathEdges); code != http.StatusMethodNotAllowed {
		t.Errorf("POST %s: %d, want 405 (read-only)", PathEdges, code)
	}

	// The first read has no rate yet; the second, a second later, has one.
	var first, second EdgesAnswer
	_, body := get(t, mux, http.MethodGet, PathEdges)
	if err := json.Unmarshal([]byte(body), &first); err != nil {
		t.Fatal(err)
	}
	if len(first.Proxies) != 1 || first.Proxies[0].Node != "node-a" || first.Proxies[0].TableVersion != 9 || len(first.Edges) != 0 || !first.EdgeSeries {
		t.Fatalf("first answer %+v", first)
	}
	if _, body := get(t, mux, http.MethodGet, PathEdges); body == "" || scrapes.Load() != 1 {
		t.Errorf("a second read within %s scraped again (%d scrapes)", minScrapeInterval, scrapes.Load())
	}
	time.Sleep(minScrapeInterval + 50*time.Millisecond)
	_, body = get(t, mux, http.MethodGet, PathEdges)
	if err := json.Unmarshal([]byte(body), &second); err != nil {
		t.Fatal(err)
	}
	if len(second.Edges) != 1 || second.Edges[0].Requests != 100 || second.Edges[0].Backend != "web-v1" || second.IntervalSeconds < 1 {
		t.Errorf("second answer %+v", second)
	}

	var events []Event
	_, body = get(t, mux, http.MethodGet, PathEvents)
	if err := json.Unmarshal([]byte(body), &events); err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].Message != "new" || events[0].Object != "TrafficSplit shop/canary" {
		t.Errorf("events %+v, want newest first", events)
	}
}
