package controller

import (
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/nodemesh/nodemesh/pkg/shadow"
)

// webInServiceCIDR is a clientset holding the cluster's ServiceCIDR
// (10.96.0.0/16, readable by the controller) and one meshed Service,
// default/web.
func webInServiceCIDR() *fake.Clientset {
	return fake.NewClientset(
		&networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"}, Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.96.0.0/16"}}},
		service("default", "web", nil, corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}),
	)
}

// TestShadowClusterIPsChosen: with the cluster's ServiceCIDR readable, a
// shadow is created with the picker's address for its name; a taken
// address moves to the next attempt's; when every attempt is taken, the
// apiserver allocates one.
func TestShadowClusterIPsChosen(t *testing.T) {
	picker, err := shadow.NewIPPicker("10.96.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		taken int // how many of the first attempts' addresses are taken
		want  string
	}{
		{"first address free", 0, picker.Pick("web--default", 0).String()},
		{"first taken", 1, picker.Pick("web--default", 1).String()},
		{"every attempt taken", ipAttempts, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube := webInServiceCIDR()
			var mu sync.Mutex
			var asked []string
			kube.PrependReactor("create", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
				svc := a.(k8stesting.CreateAction).GetObject().(*corev1.Service)
				mu.Lock()
				defer mu.Unlock()
				asked = append(asked, svc.Spec.ClusterIP)
				if svc.Spec.ClusterIP != "" && len(asked) <= tc.taken {
					return true, nil, apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, svc.Name, field.ErrorList{
						field.Invalid(field.NewPath("spec", "clusterIPs").Index(0), svc.Spec.ClusterIP, "failed to allocate IP "+svc.Spec.ClusterIP+": provided IP is already allocated"),
					})
				}
				return false, nil, nil
			})
			start(t, kube)
			waitFor(t, "the shadow", func() bool { return getShadow(kube, "web--default") != nil })
			if got := getShadow(kube, "web--default").Spec.ClusterIP; got != tc.want {
				t.Errorf("ClusterIP %q, want %q (creates asked for %q)", got, tc.want, asked)
			}
			mu.Lock()
			defer mu.Unlock()
			if n := min(tc.taken+1, ipAttempts+1); len(asked) != n {
				t.Errorf("creates asked for %q, want %d creates", asked, n)
			}
		})
	}
}

// TestShadowClusterIPsWithoutServiceCIDR: no readable ServiceCIDR (an older
// cluster, or RBAC without it): shadows take dynamic ClusterIPs.
func TestShadowClusterIPsWithoutServiceCIDR(t *testing.T) {
	kube := fake.NewClientset(service("default", "web", nil, corev1.ServicePort{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}))
	start(t, kube)
	waitFor(t, "the shadow", func() bool { return getShadow(kube, "web--default") != nil })
	if got := getShadow(kube, "web--default").Spec.ClusterIP; got != "" {
		t.Errorf("ClusterIP %q chosen without a ServiceCIDR", got)
	}
}

func TestClusterIPRejected(t *testing.T) {
	invalid := func(f *field.Path) error {
		return apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, "x", field.ErrorList{field.Invalid(f, "v", "bad")})
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{invalid(field.NewPath("spec", "clusterIPs").Index(0)), true},
		{invalid(field.NewPath("spec", "clusterIP")), true},
		{invalid(field.NewPath("spec", "ports").Index(0).Child("port")), false},
		{apierrors.NewAlreadyExists(schema.GroupResource{Resource: "services"}, "x"), false},
		{nil, false},
	} {
		if got := clusterIPRejected(tc.err); got != tc.want {
			t.Errorf("clusterIPRejected(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestShadowDeletedComesBackWithItsClusterIP: a shadow deleted from under
// the controller is made again with the address it had, even when the
// apiserver has not released that address by the first create (it
// releases it after the deletion's watch event); it does not move to the
// next attempt's address.
func TestShadowDeletedComesBackWithItsClusterIP(t *testing.T) {
	picker, err := shadow.NewIPPicker("10.96.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	own := picker.Pick("web--default", 0).String()
	kube := webInServiceCIDR()
	var mu sync.Mutex
	held := 0 // creates of own to refuse, as if the address were still held
	var asked []string
	kube.PrependReactor("create", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		svc := a.(k8stesting.CreateAction).GetObject().(*corev1.Service)
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, svc.Spec.ClusterIP)
		if svc.Spec.ClusterIP == own && held > 0 {
			held--
			return true, nil, apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, svc.Name, field.ErrorList{
				field.Invalid(field.NewPath("spec", "clusterIPs").Index(0), own, "failed to allocate IP "+own+": provided IP is already allocated"),
			})
		}
		return false, nil, nil
	})
	start(t, kube)
	waitFor(t, "the shadow", func() bool { return getShadow(kube, "web--default") != nil })
	mu.Lock()
	held, asked = 3, nil
	mu.Unlock()
	if err := kube.CoreV1().Services("nodemesh").Delete(t.Context(), "web--default", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the shadow made again", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(asked) > 0 && getShadow(kube, "web--default") != nil
	})
	mu.Lock()
	defer mu.Unlock()
	if got := getShadow(kube, "web--default").Spec.ClusterIP; got != own {
		t.Errorf("made again with ClusterIP %q, want its own %q (creates asked for %q)", got, own, asked)
	}
	if len(asked) != 4 {
		t.Errorf("creates asked for %q, want 3 refused and 1 taken", asked)
	}
}

// TestShadowCreateRemembersItsClusterIP: a shadow deleted before any diff
// saw it (its informer event not yet handled) still comes back with the
// address its own create named, not the next attempt's. The integration
// test TestControllerShadowServices failed this way once on a slow host.
func TestShadowCreateRemembersItsClusterIP(t *testing.T) {
	picker, err := shadow.NewIPPicker("10.96.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	own := picker.Pick("db--shop", 0).String()
	kube := fake.NewClientset()
	var mu sync.Mutex
	held := 0 // creates of own to refuse, as if the address were still held
	kube.PrependReactor("create", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		svc := a.(k8stesting.CreateAction).GetObject().(*corev1.Service)
		mu.Lock()
		defer mu.Unlock()
		if svc.Spec.ClusterIP == own && held > 0 {
			held--
			return true, nil, apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, svc.Name, field.ErrorList{
				field.Invalid(field.NewPath("spec", "clusterIPs").Index(0), own, "failed to allocate IP "+own+": provided IP is already allocated"),
			})
		}
		return false, nil, nil
	})
	c := newTestController(t, kube)
	ns := c.cfg.MeshNamespace
	// Only what create uses: the controller is not running, so it has no
	// listers for newShadowWriter.
	w := &shadowWriter{c: c, kube: kube, ns: ns, ips: picker, seenIPs: map[string]string{}}
	desired := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db--shop"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "tcp-5432", Port: 5432, Protocol: corev1.ProtocolTCP}}},
	}
	if err := w.create(t.Context(), desired); err != nil {
		t.Fatal(err)
	}
	if err := kube.CoreV1().Services(ns).Delete(t.Context(), "db--shop", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	held = 2
	mu.Unlock()
	if err := w.create(t.Context(), desired); err != nil {
		t.Fatal(err)
	}
	if got := getShadow(kube, "db--shop").Spec.ClusterIP; got != own {
		t.Errorf("made again with ClusterIP %q, want its own %q", got, own)
	}
}
