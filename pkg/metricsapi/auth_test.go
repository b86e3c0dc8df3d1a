package metricsapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http/httptest"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// testCA is a CA that issues client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "front-proxy-ca"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) client(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func authConfigMap(ca []byte) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "extension-apiserver-authentication"}, Data: map[string]string{
		"requestheader-client-ca-file":       string(ca),
		"requestheader-allowed-names":        `["front-proxy-client"]`,
		"requestheader-username-headers":     `["X-Remote-User"]`,
		"requestheader-group-headers":        `["X-Remote-Group"]`,
		"requestheader-extra-headers-prefix": `["X-Remote-Extra-"]`,
	}}
}

func TestAuthenticateTheFrontProxyOnly(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	a := &authenticator{kube: fake.NewClientset(authConfigMap(ca.pem))}
	if err := a.load(context.Background()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cert *x509.Certificate
		user string
		ok   bool
	}{
		{"the aggregator", ca.client(t, "front-proxy-client"), "jane", true},
		{"no user header", ca.client(t, "front-proxy-client"), "", false},
		{"a name not allowed", ca.client(t, "someone-else"), "jane", false},
		{"another CA", other.client(t, "front-proxy-client"), "jane", false},
		{"no certificate", nil, "jane", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/apis/metrics.smi-spec.io/v1alpha1", nil)
			r.TLS = &tls.ConnectionState{}
			if tc.cert != nil {
				r.TLS.PeerCertificates = []*x509.Certificate{tc.cert}
			}
			if tc.user != "" {
				r.Header.Set("X-Remote-User", tc.user)
			}
			r.Header.Add("X-Remote-Group", "dev")
			r.Header.Add("X-Remote-Group", "system:authenticated")
			r.Header.Set("X-Remote-Extra-Scopes%2fA", "x")
			u, err := a.authenticate(r)
			if (err == nil) != tc.ok {
				t.Fatalf("authenticate: %v, want ok %v", err, tc.ok)
			}
			if tc.ok && (u.Name != "jane" || len(u.Groups) != 2 || u.Extra["scopes/a"][0] != "x") {
				t.Errorf("user %+v", u)
			}
		})
	}
}

func TestLoadNeedsTheAggregationLayer(t *testing.T) {
	a := &authenticator{kube: fake.NewClientset(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "extension-apiserver-authentication"}})}
	if err := a.load(context.Background()); err == nil {
		t.Error("a ConfigMap without requestheader settings must be refused")
	}
}

func TestAuthorizerAsksOnceAndCaches(t *testing.T) {
	kube := fake.NewClientset()
	reviews := 0
	kube.PrependReactor("create", "subjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		reviews++
		sar := action.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		ra := sar.Spec.ResourceAttributes
		sar.Status.Allowed = sar.Spec.User == "jane" && ra.Group == "metrics.smi-spec.io" && ra.Resource == "deployments" && ra.Subresource == "edges"
		return true, sar, nil
	})
	z := &authorizer{kube: kube, ttl: time.Minute}
	a := attributes{Verb: "get", Namespace: "shop", Resource: "deployments", Subresource: "edges", Name: "client"}
	for range 3 {
		if ok, _, err := z.authorize(context.Background(), &user{Name: "jane"}, a); !ok || err != nil {
			t.Fatalf("jane: %v %v", ok, err)
		}
	}
	if ok, _, _ := z.authorize(context.Background(), &user{Name: "joe"}, a); ok {
		t.Error("joe must be refused")
	}
	if reviews != 2 {
		t.Errorf("%d reviews, want 2 (one per user)", reviews)
	}
}
