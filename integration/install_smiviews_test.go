package integration_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	accessv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha1"
	accessv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha2"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha1"
	specsv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha2"
	specsv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha1"
	splitv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha2"
	splitv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha3"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// metaGet are the options of every read.
var metaGet = metav1.GetOptions{}

// versionRead is one version's way to read an object, and the view of it
// that version must show; want nil means the version must not be served.
type versionRead struct {
	version string
	read    func() (any, error)
	want    any
}

// readVia reads name through a typed client's Get and reduces it to a view.
func readVia[T any](ctx context.Context, name string, get func(context.Context, string, metav1.GetOptions) (T, error), view func(T) any) func() (any, error) {
	return func() (any, error) {
		obj, err := get(ctx, name, metaGet)
		if err != nil {
			return nil, err
		}
		return view(obj), nil
	}
}

// readBack reads the example object doc (kind, ns/name) through every
// version of its kind and compares each view with the example's.
func (s smiClients) readBack(t *testing.T, doc []byte, kind, ns, name string) {
	ctx := t.Context()
	var reads []versionRead
	switch kind {
	case "TrafficSplit":
		var src splitv1alpha4.TrafficSplit
		decodeStrict(t, doc, &src)
		want := splitView4(&src)
		// v1alpha1 and v1alpha2 have no matches: their view lacks them.
		old := want
		old.Matches = nil
		reads = []versionRead{
			{"v1alpha4", readVia(ctx, name, s.split.SplitV1alpha4().TrafficSplits(ns).Get, func(o *splitv1alpha4.TrafficSplit) any { return splitView4(o) }), want},
			{"v1alpha3", readVia(ctx, name, s.split.SplitV1alpha3().TrafficSplits(ns).Get, func(o *splitv1alpha3.TrafficSplit) any { return splitView3(o) }), want},
			{"v1alpha2", readVia(ctx, name, s.split.SplitV1alpha2().TrafficSplits(ns).Get, func(o *splitv1alpha2.TrafficSplit) any { return splitView2(o) }), old},
			{"v1alpha1", readVia(ctx, name, s.split.SplitV1alpha1().TrafficSplits(ns).Get, func(o *splitv1alpha1.TrafficSplit) any { return splitView1(o) }), old},
		}
	case "HTTPRouteGroup":
		var src specsv1alpha4.HTTPRouteGroup
		decodeStrict(t, doc, &src)
		want := routeGroupView4(&src)
		reads = []versionRead{
			{"v1alpha4", readVia(ctx, name, s.specs.SpecsV1alpha4().HTTPRouteGroups(ns).Get, func(o *specsv1alpha4.HTTPRouteGroup) any { return routeGroupView4(o) }), want},
			{"v1alpha3", readVia(ctx, name, s.specs.SpecsV1alpha3().HTTPRouteGroups(ns).Get, func(o *specsv1alpha3.HTTPRouteGroup) any { return routeGroupView3(o) }), want},
			{"v1alpha2", readVia(ctx, name, s.specs.SpecsV1alpha2().HTTPRouteGroups(ns).Get, func(*specsv1alpha2.HTTPRouteGroup) any { return nil }), nil},
			{"v1alpha1", readVia(ctx, name, s.specs.SpecsV1alpha1().HTTPRouteGroups(ns).Get, func(*specsv1alpha1.HTTPRouteGroup) any { return nil }), nil},
		}
	case "TCPRoute":
		var src specsv1alpha4.TCPRoute
		decodeStrict(t, doc, &src)
		want := streamView{Name: src.Spec.Matches.Name, Ports: src.Spec.Matches.Ports}
		// Older TCPRoutes have no fields: the view of every port.
		reads = []versionRead{
			{"v1alpha4", readVia(ctx, name, s.specs.SpecsV1alpha4().TCPRoutes(ns).Get, func(o *specsv1alpha4.TCPRoute) any {
				return streamView{Name: o.Spec.Matches.Name, Ports: o.Spec.Matches.Ports}
			}), want},
			{"v1alpha3", readVia(ctx, name, s.specs.SpecsV1alpha3().TCPRoutes(ns).Get, func(*specsv1alpha3.TCPRoute) any { return streamView{} }), streamView{}},
			{"v1alpha2", readVia(ctx, name, s.specs.SpecsV1alpha2().TCPRoutes(ns).Get, func(*specsv1alpha2.TCPRoute) any { return streamView{} }), streamView{}},
			{"v1alpha1", readVia(ctx, name, s.specs.SpecsV1alpha1().TCPRoutes(ns).Get, func(*specsv1alpha1.TCPRoute) any { return streamView{} }), streamView{}},
		}
	case "UDPRoute":
		var src specsv1alpha4.UDPRoute
		decodeStrict(t, doc, &src)
		want := streamView{Name: src.Spec.Matches.Name, Ports: src.Spec.Matches.Ports}
		reads = []versionRead{
			{"v1alpha4", readVia(ctx, name, s.specs.SpecsV1alpha4().UDPRoutes(ns).Get, func(o *specsv1alpha4.UDPRoute) any {
				return streamView{Name: o.Spec.Matches.Name, Ports: o.Spec.Matches.Ports}
			}), want},
		}
	case "TrafficTarget":
		var src accessv1alpha3.TrafficTarget
		decodeStrict(t, doc, &src)
		want := targetView3(&src)
		reads = []versionRead{
			{"v1alpha3", readVia(ctx, name, s.access.AccessV1alpha3().TrafficTargets(ns).Get, func(o *accessv1alpha3.TrafficTarget) any { return targetView3(o) }), want},
			{"v1alpha2", readVia(ctx, name, s.access.AccessV1alpha2().TrafficTargets(ns).Get, func(o *accessv1alpha2.TrafficTarget) any { return targetView2(o) }), want},
			{"v1alpha1", readVia(ctx, name, s.access.AccessV1alpha1().TrafficTargets(ns).Get, func(*accessv1alpha1.TrafficTarget) any { return nil }), nil},
		}
	default:
		t.Fatalf("no read-back for SMI kind %s", kind)
	}
	for _, r := range reads {
		got, err := r.read()
		switch {
		case r.want == nil:
			if !apierrors.IsNotFound(err) {
				t.Errorf("%s %s: got %+v, %v; want NotFound, the version is not served", kind, r.version, got, err)
			}
		case err != nil:
			t.Errorf("%s %s: %v", kind, r.version, err)
		case !reflect.DeepEqual(got, r.want):
			t.Errorf("%s %s reads back\n  %+v\nwant\n  %+v", kind, r.version, got, r.want)
		}
	}
}

// decodeStrict decodes an example document into its SDK type; an unknown
// field means the example uses something the SDK (and so nodemesh) ignores.
func decodeStrict(t *testing.T, doc []byte, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(doc, into); err != nil {
		t.Fatalf("example does not decode into %T: %v", into, err)
	}
}

// splitView is what every TrafficSplit version can say, as comparable text.
type splitView struct {
	Service  string
	Backends []string // service=weight
	Matches  []string // kind/name
}

func splitView4(o *splitv1alpha4.TrafficSplit) splitView {
	v := splitView{Service: o.Spec.Service}
	for _, b := range o.Spec.Backends {
		v.Backends = append(v.Backends, fmt.Sprintf("%s=%d", b.Service, b.Weight))
	}
	v.Matches = refs(o.Spec.Matches)
	return v
}

func splitView3(o *splitv1alpha3.TrafficSplit) splitView {
	v := splitView{Service: o.Spec.Service}
	for _, b := range o.Spec.Backends {
		v.Backends = append(v.Backends, fmt.Sprintf("%s=%d", b.Service, b.Weight))
	}
	v.Matches = refs(o.Spec.Matches)
	return v
}

func splitView2(o *splitv1alpha2.TrafficSplit) splitView {
	v := splitView{Service: o.Spec.Service}
	for _, b := range o.Spec.Backends {
		v.Backends = append(v.Backends, fmt.Sprintf("%s=%d", b.Service, b.Weight))
	}
	return v
}

// splitView1 reads v1alpha1's Quantity weights, which decode from the JSON
// numbers v1alpha4 stores.
func splitView1(o *splitv1alpha1.TrafficSplit) splitView {
	v := splitView{Service: o.Spec.Service}
	for _, b := range o.Spec.Backends {
		w := "nil"
		if b.Weight != nil {
			w = b.Weight.String()
		}
		v.Backends = append(v.Backends, fmt.Sprintf("%s=%s", b.Service, w))
	}
	return v
}

func refs(rs []corev1.TypedLocalObjectReference) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Kind+"/"+r.Name)
	}
	return out
}

// routeGroupView is an HTTPRouteGroup's matches as comparable text.
type routeGroupView struct{ Matches []string }

func routeGroupView4(o *specsv1alpha4.HTTPRouteGroup) routeGroupView {
	var v routeGroupView
	for _, m := range o.Spec.Matches {
		v.Matches = append(v.Matches, httpMatch(m.Name, m.PathRegex, m.Methods, m.Headers))
	}
	return v
}

func routeGroupView3(o *specsv1alpha3.HTTPRouteGroup) routeGroupView {
	var v routeGroupView
	for _, m := range o.Spec.Matches {
		v.Matches = append(v.Matches, httpMatch(m.Name, m.PathRegex, m.Methods, m.Headers))
	}
	return v
}

func httpMatch(name, path string, methods []string, headers map[string]string) string {
	return fmt.Sprintf("%s path=%q methods=%v headers=%s", name, path, methods, sortedPairs(headers))
}

// streamView is a TCPRoute's or UDPRoute's match.
type streamView struct {
	Name  string
	Ports []int
}

// targetView is a TrafficTarget as comparable text.
type targetView struct {
	Destination string
	Rules       []string
	Sources     []string
}

func targetView3(o *accessv1alpha3.TrafficTarget) targetView {
	d := o.Spec.Destination
	v := targetView{Destination: fmt.Sprintf("%s:%s/%s", d.Kind, d.Namespace, d.Name)}
	for _, r := range o.Spec.Rules {
		v.Rules = append(v.Rules, fmt.Sprintf("%s/%s%v", r.Kind, r.Name, r.Matches))
	}
	for _, s := range o.Spec.Sources {
		v.Sources = append(v.Sources, fmt.Sprintf("%s:%s/%s", s.Kind, s.Namespace, s.Name))
	}
	return v
}

// targetView2 shows a destination port, which smi-sdk-go's v1alpha3 type
// cannot hold, so that one the examples do not set would fail the
// comparison.
func targetView2(o *accessv1alpha2.TrafficTarget) targetView {
	d := o.Spec.Destination
	v := targetView{Destination: fmt.Sprintf("%s:%s/%s", d.Kind, d.Namespace, d.Name)}
	if d.Port != nil {
		v.Destination += fmt.Sprintf(":%d", *d.Port)
	}
	for _, r := range o.Spec.Rules {
		v.Rules = append(v.Rules, fmt.Sprintf("%s/%s%v", r.Kind, r.Name, r.Matches))
	}
	for _, s := range o.Spec.Sources {
		v.Sources = append(v.Sources, fmt.Sprintf("%s:%s/%s", s.Kind, s.Namespace, s.Name))
	}
	return v
}
