package controller

import (
	"slices"
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

// ipTaken is the apiserver's refusal of a Service create whose ClusterIP
// ip is allocated already.
func ipTaken(name, ip string) error {
	return apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, name, field.ErrorList{
		field.Invalid(field.NewPath("spec", "clusterIPs").Index(0), ip, "failed to allocate IP "+ip+": provided IP is already allocated"),
	})
}

// heldIP makes kube refuse creates of a Service with one ClusterIP while
// holds are left, as kube-apiserver does before it has released a deleted
// Service's address, and records the ClusterIP every create asked for.
type heldIP struct {
	ip    string
	mu    sync.Mutex
	holds int
	asked []string
}

func holdIP(kube *fake.Clientset, ip string) *heldIP {
	h := &heldIP{ip: ip}
	kube.PrependReactor("create", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		svc := a.(k8stesting.CreateAction).GetObject().(*corev1.Service)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.asked = append(h.asked, svc.Spec.ClusterIP)
		if svc.Spec.ClusterIP == h.ip && h.holds > 0 {
			h.holds--
			return true, nil, ipTaken(svc.Name, h.ip)
		}
		return false, nil, nil
	})
	return h
}

// hold refuses the next n creates of the address and forgets the creates
// asked for so far.
func (h *heldIP) hold(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.holds, h.asked = n, nil
}

// creates returns the ClusterIPs asked for since the last hold.
func (h *heldIP) creates() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.asked)
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
					return true, nil, ipTaken(svc.Name, svc.Spec.ClusterIP)
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
	held := holdIP(kube, own)
	start(t, kube)
	waitFor(t, "the shadow", func() bool { return getShadow(kube, "web--default") != nil })
	held.hold(3)
	if err := kube.CoreV1().Services("nodemesh").Delete(t.Context(), "web--default", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the shadow made again", func() bool {
		return len(held.creates()) > 0 && getShadow(kube, "web--default") != nil
	})
	asked := held.creates()
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
	held := holdIP(kube, own)
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
	held.hold(2)
	if err := w.create(t.Context(), desired); err != nil {
		t.Fatal(err)
	}
	if got := getShadow(kube, "db--shop").Spec.ClusterIP; got != own {
		t.Errorf("made again with ClusterIP %q, want its own %q", got, own)
	}
}
