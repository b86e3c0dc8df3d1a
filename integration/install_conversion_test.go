package integration_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/nodemesh/nodemesh/integration/harness"
)

// warnings collects the apiserver's warning headers (deprecated versions).
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

// take returns the warnings seen since the last call.
func (w *warnings) take() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := strings.Join(w.msgs, "\n")
	w.msgs = nil
	return s
}

// smiAPI writes and reads SMI objects in any version, as unstructured data,
// the way kubectl and controllers built on other SDK versions do.
type smiAPI struct {
	client dynamic.Interface
	warn   *warnings
}

func newSMIAPI(t *testing.T, c *harness.Cluster) smiAPI {
	t.Helper()
	cfg := c.RESTConfig()
	w := &warnings{}
	cfg.WarningHandler = w
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return smiAPI{client: client, warn: w}
}

// resource is the dynamic client for obj's kind in its apiVersion.
func (a smiAPI) resource(obj *unstructured.Unstructured) dynamic.ResourceInterface {
	gv := obj.GroupVersionKind()
	plural := strings.ToLower(gv.Kind) + "s"
	return a.client.Resource(schema.GroupVersionResource{Group: gv.Group, Version: gv.Version, Resource: plural}).Namespace(obj.GetNamespace())
}

func (a smiAPI) create(ctx context.Context, manifest string) (*unstructured.Unstructured, error) {
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &obj.Object); err != nil {
		return nil, err
	}
	return a.resource(obj).Create(ctx, obj, metav1.CreateOptions{})
}

// get reads namespace/name as kind in apiVersion.
func (a smiAPI) get(ctx context.Context, apiVersion, kind, namespace, name string) (*unstructured.Unstructured, error) {
	ref := &unstructured.Unstructured{}
	ref.SetAPIVersion(apiVersion)
	ref.SetKind(kind)
	ref.SetNamespace(namespace)
	return a.resource(ref).Get(ctx, name, metav1.GetOptions{})
}

func (a smiAPI) mustCreate(t *testing.T, manifest string) *unstructured.Unstructured {
	t.Helper()
	obj, err := a.create(t.Context(), manifest)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

func (a smiAPI) mustGet(t *testing.T, apiVersion, kind, namespace, name string) *unstructured.Unstructured {
	t.Helper()
	obj, err := a.get(t.Context(), apiVersion, kind, namespace, name)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

// checkConversionDecisions pins each served-or-not decision of docs/smi.md
// against the real apiserver, in namespace ns (which must exist).
func checkConversionDecisions(t *testing.T, c *harness.Cluster, ns string) {
	api := newSMIAPI(t, c)
	ctx := t.Context()
	refused := func(t *testing.T, err error, fragment string) {
		t.Helper()
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), fragment) {
			t.Fatalf("got %v; want it refused as invalid, naming %q", err, fragment)
		}
	}

	t.Run("split v1alpha1 refuses a quantity weight, which v1alpha4 cannot store", func(t *testing.T) {
		_, err := api.create(ctx, `
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: quantity, namespace: `+ns+`}
spec:
  service: web
  backends: [{service: web-v1, weight: 500m}]`)
		refused(t, err, "spec.backends[0].weight")
	})

	t.Run("split v1alpha1 with whole weights is stored as v1alpha4, with a deprecation warning", func(t *testing.T) {
		api.warn.take()
		api.mustCreate(t, `
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: whole, namespace: `+ns+`}
spec:
  service: web
  backends: [{service: web-v1, weight: 3}, {service: web-v2, weight: 1}]`)
		if w := api.warn.take(); !strings.Contains(w, "split.smi-spec.io/v1alpha1 TrafficSplit is a view of v1alpha4") {
			t.Errorf("warnings %q; want the deprecation warning", w)
		}
		got := api.mustGet(t, "split.smi-spec.io/v1alpha4", "TrafficSplit", ns, "whole")
		backends, _, _ := unstructured.NestedSlice(got.Object, "spec", "backends")
		if w, _ := backends[0].(map[string]any)["weight"].(int64); len(backends) != 2 || w != 3 {
			t.Errorf("v1alpha4 backends %v; want web-v1=3, web-v2=1", backends)
		}
	})

	t.Run("writing a split through v1alpha2 removes its matches, as documented", func(t *testing.T) {
		api.mustCreate(t, `
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: ab, namespace: `+ns+`}
spec:
  service: web
  matches: [{kind: HTTPRouteGroup, name: firefox}]
  backends: [{service: web-v2, weight: 1}]`)
		old := api.mustGet(t, "split.smi-spec.io/v1alpha2", "TrafficSplit", ns, "ab")
		if _, found, _ := unstructured.NestedFieldNoCopy(old.Object, "spec", "matches"); found {
			t.Error("the v1alpha2 view shows matches, which v1alpha2 does not have")
		}
		if _, err := api.resource(old).Update(ctx, old, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		got := api.mustGet(t, "split.smi-spec.io/v1alpha4", "TrafficSplit", ns, "ab")
		if _, found, _ := unstructured.NestedFieldNoCopy(got.Object, "spec", "matches"); found {
			t.Error("matches survived a write through v1alpha2; docs/smi.md says they are removed")
		}
	})

	t.Run("access destination.port survives both versions (a nodemesh extension of v1alpha3)", func(t *testing.T) {
		created := api.mustCreate(t, `
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: with-port, namespace: `+ns+`}
spec:
  destination: {kind: ServiceAccount, name: api, port: 8080}
  rules: [{kind: TCPRoute, name: all}]
  sources: [{kind: ServiceAccount, name: web}]`)
		got := api.mustGet(t, "access.smi-spec.io/v1alpha3", "TrafficTarget", ns, "with-port")
		if !equalSpecs(created, got) {
			t.Errorf("v1alpha3 spec %v; written as v1alpha2 %v", got.Object["spec"], created.Object["spec"])
		}
		if port, _, _ := unstructured.NestedInt64(got.Object, "spec", "destination", "port"); port != 8080 {
			t.Errorf("v1alpha3 destination.port %d, want 8080 (pruned, the target would allow every port)", port)
		}
		// A write through v1alpha3 keeps it too (read-modify-write by a
		// v1alpha3 tool).
		if _, err := api.resource(got).Update(ctx, got, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		old := api.mustGet(t, "access.smi-spec.io/v1alpha2", "TrafficTarget", ns, "with-port")
		if port, _, _ := unstructured.NestedInt64(old.Object, "spec", "destination", "port"); port != 8080 {
			t.Errorf("after a v1alpha3 write, v1alpha2 destination.port %d, want 8080", port)
		}
		_, err := api.create(ctx, `
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: bad-port, namespace: `+ns+`}
spec:
  destination: {kind: ServiceAccount, name: api, port: 70000}
  rules: [{kind: TCPRoute, name: all}]
  sources: [{kind: ServiceAccount, name: web}]`)
		refused(t, err, "spec.destination.port")
	})

	t.Run("access v1alpha2 without a port reads back unchanged as v1alpha3", func(t *testing.T) {
		created := api.mustCreate(t, `
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: no-port, namespace: `+ns+`}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: `+ns+`}
  rules: [{kind: HTTPRouteGroup, name: api-routes, matches: [read]}]
  sources: [{kind: ServiceAccount, name: web, namespace: other}]`)
		got := api.mustGet(t, "access.smi-spec.io/v1alpha3", "TrafficTarget", ns, "no-port")
		if !equalSpecs(created, got) {
			t.Errorf("v1alpha3 spec %v; written as v1alpha2 %v", got.Object["spec"], created.Object["spec"])
		}
	})

	t.Run("HTTPRouteGroup v1alpha2, whose matches sit outside spec, is not served", func(t *testing.T) {
		_, err := api.create(ctx, `
apiVersion: specs.smi-spec.io/v1alpha2
kind: HTTPRouteGroup
metadata: {name: old, namespace: `+ns+`}
matches: [{name: all, pathRegex: /.*}]`)
		if !apierrors.IsNotFound(err) {
			t.Fatalf("got %v; want NotFound", err)
		}
	})

	t.Run("HTTPRouteGroup refuses a header item naming two headers, which the SDK cannot decode", func(t *testing.T) {
		_, err := api.create(ctx, `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: two-headers, namespace: `+ns+`}
spec:
  matches: [{name: m, headers: [{x-a: "1", x-b: "2"}]}]`)
		refused(t, err, "headers[0]")
	})

	t.Run("HTTPRouteGroup refuses two matches of one name, which TrafficTargets could not tell apart", func(t *testing.T) {
		_, err := api.create(ctx, `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: twins, namespace: `+ns+`}
spec:
  matches: [{name: m, pathRegex: /a}, {name: m, pathRegex: /b}]`)
		refused(t, err, "Duplicate value")
	})

	t.Run("TCPRoute v1alpha3 reads back as a v1alpha4 route of every port", func(t *testing.T) {
		api.mustCreate(t, `
apiVersion: specs.smi-spec.io/v1alpha3
kind: TCPRoute
metadata: {name: legacy, namespace: `+ns+`}
spec: {}`)
		got := api.mustGet(t, "specs.smi-spec.io/v1alpha4", "TCPRoute", ns, "legacy")
		if ports, found, _ := unstructured.NestedSlice(got.Object, "spec", "matches", "ports"); found && len(ports) > 0 {
			t.Errorf("v1alpha4 ports %v; want none (every port)", ports)
		}
	})
}

func equalSpecs(a, b *unstructured.Unstructured) bool {
	x, _ := yaml.Marshal(a.Object["spec"])
	y, _ := yaml.Marshal(b.Object["spec"])
	return string(x) == string(y)
}
