package shadow

import (
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/portalloc"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

func src(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

func TestNames(t *testing.T) {
	n30, n31 := strings.Repeat("n", 30), strings.Repeat("n", 31)
	long := strings.Repeat("x", 63)
	sources := []types.NamespacedName{
		src("shop", "web"),
		src(n31, n30),    // 30+2+31 = 63: plain
		src(n31, n31),    // 64: hashed
		src(long, long),  // the longest Kubernetes allows
		src("c", "a--b"), // wants "a--b--c" ...
		src("b--c", "a"), // ... as does this one, which sorts first
	}
	got := Names(sources)
	want := map[types.NamespacedName]string{
		src("shop", "web"): "web--shop",
		src(n31, n30):      n30 + "--" + n31,
		src("b--c", "a"):   "a--b--c",
	}
	for s, name := range want {
		if got[s] != name {
			t.Errorf("%s: %q, want %q", s, got[s], name)
		}
	}
	hashed := regexp.MustCompile(`^[a-z0-9-]+-[0-9a-f]{10}$`)
	for _, s := range []types.NamespacedName{src(n31, n31), src(long, long), src("c", "a--b")} {
		if !hashed.MatchString(got[s]) || got[s] != HashedName(s) {
			t.Errorf("%s: %q is not its hashed name %q", s, got[s], HashedName(s))
		}
	}
	seen := map[string]bool{}
	for s, name := range got {
		if errs := validation.IsDNS1035Label(name); len(errs) > 0 {
			t.Errorf("%s: %q is not a valid Service name: %v", s, name, errs)
		}
		if seen[name] {
			t.Errorf("name %q given twice", name)
		}
		seen[name] = true
	}
	// The answer depends on the set, not on the order.
	slices.Reverse(sources)
	if again := Names(sources); !reflect.DeepEqual(again, got) {
		t.Error("Names depends on input order")
	}
}

func TestHashedNameTakenIsSalted(t *testing.T) {
	// A plain name crafted to equal another source's hashed name.
	victim := src("c", "a--b")
	h := HashedName(victim) // "a--b--c-<hash>"
	crafted := src("b--c-"+h[len("a--b--c-"):], "a")
	if PlainName(crafted) != h {
		t.Fatalf("test setup: %q != %q", PlainName(crafted), h)
	}
	got := Names([]types.NamespacedName{victim, crafted, src("b--c", "a")})
	if got[crafted] != h || got[victim] == h || got[victim] == "" {
		t.Fatalf("got %v", got)
	}
}

func spec() Spec {
	return Spec{Namespace: "nodemesh", Name: "web--shop", Source: src("shop", "web"), Ports: []Port{
		{Kind: KindUDP, Port: 53, TargetPort: 11000},
		{Kind: KindHTTP, Port: 80, TargetPort: 7000},
		{Kind: KindTCP, Port: 53, TargetPort: 10000},
	}}
}

func TestDesired(t *testing.T) {
	out := Desired([]Spec{spec(), {Namespace: "nodemesh", Name: "empty", Source: src("a", "b")}})
	if len(out) != 1 {
		t.Fatalf("got %d services; a spec without ports must be skipped", len(out))
	}
	svc := out[0]
	if svc.Spec.InternalTrafficPolicy == nil || *svc.Spec.InternalTrafficPolicy != corev1.ServiceInternalTrafficPolicyLocal {
		t.Error("internalTrafficPolicy is not Local")
	}
	if !reflect.DeepEqual(svc.Spec.Selector, ProxySelector) || svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("selector %v type %v", svc.Spec.Selector, svc.Spec.Type)
	}
	if src, ok := SourceOf(svc); !ok || src.String() != "shop/web" {
		t.Errorf("labels %v", svc.Labels)
	}
	var names []string
	for _, p := range svc.Spec.Ports {
		names = append(names, p.Name+"/"+string(p.Protocol)+"->"+p.TargetPort.String())
	}
	if want := []string{"tcp-53/TCP->10000", "udp-53/UDP->11000", "http-80/TCP->7000"}; !reflect.DeepEqual(names, want) {
		t.Errorf("ports %v, want %v", names, want)
	}
}

// TestRender: one spec renders as Desired renders it; a spec without
// ports renders nothing.
func TestRender(t *testing.T) {
	s := spec()
	if got, want := Render(&s), Desired([]Spec{spec()})[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("Render gives\n%+v\nDesired gives\n%+v", got, want)
	}
	if got := Render(&Spec{Namespace: "nodemesh", Name: "empty", Source: src("a", "b")}); got != nil {
		t.Errorf("a spec without ports rendered %+v", got)
	}
}

func TestAllocationsRoundTrip(t *testing.T) {
	svc := Desired([]Spec{spec()})[0]
	want := []portalloc.Allocation{
		{Key: portalloc.Key{Service: src("shop", "web"), Port: 53, Protocol: corev1.ProtocolTCP}, ProxyPort: 10000},
		{Key: portalloc.Key{Service: src("shop", "web"), Port: 53, Protocol: corev1.ProtocolUDP}, ProxyPort: 11000},
	}
	if got := Allocations([]*corev1.Service{svc}); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	edited := svc.DeepCopy()
	edited.Spec.Ports[0].TargetPort = intstr.FromString("named") // tcp-53
	edited.Spec.Ports[1].Port = 54                               // udp-53 renumbered by hand
	if got := Allocations([]*corev1.Service{edited}); len(got) != 0 {
		t.Errorf("hand-edited ports were read back: %v", got)
	}
	foreign := svc.DeepCopy()
	delete(foreign.Labels, LabelManagedBy)
	if got := Allocations([]*corev1.Service{foreign}); len(got) != 0 {
		t.Errorf("a Service not managed by nodemesh was read back: %v", got)
	}
}

// asStored is desired as the apiserver returns it: defaulted and assigned
// fields filled, labels and annotations added by other tools.
func asStored(desired *corev1.Service) *corev1.Service {
	s := desired.DeepCopy()
	s.ResourceVersion, s.UID = "42", "uid"
	s.Labels["team"] = "x"
	s.Annotations = map[string]string{"note": "y"}
	s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.9", []string{"10.96.0.9"}
	single := corev1.IPFamilyPolicySingleStack
	s.Spec.IPFamilies, s.Spec.IPFamilyPolicy = []corev1.IPFamily{corev1.IPv4Protocol}, &single
	s.Spec.SessionAffinity = corev1.ServiceAffinityNone
	slices.Reverse(s.Spec.Ports)
	return s
}

func TestNeedsUpdate(t *testing.T) {
	desired := Desired([]Spec{spec()})[0]
	if NeedsUpdate(desired, asStored(desired)) {
		t.Fatal("an unchanged shadow needs an update: a restart would write")
	}
	if !NeedsUpdate(desired, nil) {
		t.Fatal("a missing shadow needs no write")
	}
	edits := map[string]func(s *corev1.Service){
		"selector widened": func(s *corev1.Service) { s.Spec.Selector["extra"] = "1" },
		"selector removed": func(s *corev1.Service) { s.Spec.Selector = nil },
		"policy set to Cluster": func(s *corev1.Service) {
			p := corev1.ServiceInternalTrafficPolicyCluster
			s.Spec.InternalTrafficPolicy = &p
		},
		"policy unset":             func(s *corev1.Service) { s.Spec.InternalTrafficPolicy = nil },
		"source label changed":     func(s *corev1.Service) { s.Labels[LabelSourceName] = "other" },
		"managed-by label removed": func(s *corev1.Service) { delete(s.Labels, LabelManagedBy) },
		"type changed":             func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort },
		"targetPort changed":       func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromInt32(1) },
		"port added":               func(s *corev1.Service) { s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "x", Port: 1}) },
		"port removed":             func(s *corev1.Service) { s.Spec.Ports = s.Spec.Ports[1:] },
		"port renamed":             func(s *corev1.Service) { s.Spec.Ports[0].Name = "renamed" },
		"port protocol changed":    func(s *corev1.Service) { s.Spec.Ports[0].Protocol = corev1.ProtocolSCTP },
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			actual := asStored(desired)
			edit(actual)
			if !NeedsUpdate(desired, actual) {
				t.Fatal("edit not detected")
			}
			merged := Merge(desired, actual)
			if NeedsUpdate(desired, merged) {
				t.Fatal("Merge did not repair the edit")
			}
			if merged.ResourceVersion != "42" || merged.Spec.ClusterIP != "10.96.0.9" || merged.Labels["team"] != "x" {
				t.Fatal("Merge lost fields set by others")
			}
			if actual.Spec.ClusterIP != "10.96.0.9" || (name == "selector widened" && actual.Spec.Selector["extra"] != "1") {
				t.Fatal("Merge modified its input")
			}
		})
	}
}

func TestOrphans(t *testing.T) {
	desired := Desired([]Spec{spec()})
	keep := asStored(desired[0])
	gone := asStored(desired[0])
	gone.Name = "gone--shop"
	foreign := asStored(desired[0])
	foreign.Name, foreign.Labels = "not-ours", nil
	got := Orphans(desired, []*corev1.Service{keep, foreign, gone})
	if len(got) != 1 || got[0].Name != "gone--shop" {
		t.Fatalf("orphans = %v", got)
	}
}

func TestParsePortName(t *testing.T) {
	for name, want := range map[string]bool{"tcp-1": true, "udp-65535": true, "http-80": true, "grpc-1": false, "tcp": false, "tcp-x": false, "": false} {
		if _, _, ok := ParsePortName(name); ok != want {
			t.Errorf("ParsePortName(%q) ok = %v", name, ok)
		}
	}
}
