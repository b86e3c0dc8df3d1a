package metricsapi

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Authentication follows the aggregation layer's contract for extension
// API servers: kube-apiserver proxies each request with its front-proxy
// client certificate (signed by the requestheader CA, with a common name
// in requestheader-allowed-names) and names the user in the requestheader
// headers. kube-apiserver publishes those settings in the ConfigMap
// kube-system/extension-apiserver-authentication. A request without such
// a certificate is refused: this API is served only through the
// aggregator.
//
// This is written against the ConfigMap rather than with k8s.io/apiserver's
// delegating authenticator so that the nodemesh binary, which every node
// proxy runs, does not grow by the ~20 MiB that library links in
// (docs/observability.md).

// authConfigMap is where kube-apiserver publishes the requestheader settings.
const (
	authConfigMapNamespace = "kube-system"
	authConfigMapName      = "extension-apiserver-authentication"
)

// user is an authenticated caller, as the aggregator named it.
type user struct {
	Name   string
	Groups []string
	Extra  map[string][]string
}

// requestHeader is one reading of the requestheader settings.
type requestHeader struct {
	roots         *x509.CertPool
	allowedNames  []string
	userHeaders   []string
	groupHeaders  []string
	extraPrefixes []string
}

// authenticator checks requests against the latest requestheader settings,
// re-read every refresh so that a rotated front-proxy CA is picked up.
type authenticator struct {
	kube kubernetes.Interface
	cur  atomic.Pointer[requestHeader]
}

// load reads the ConfigMap once.
func (a *authenticator) load(ctx context.Context) error {
	cm, err := a.kube.CoreV1().ConfigMaps(authConfigMapNamespace).Get(ctx, authConfigMapName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading %s/%s: %w", authConfigMapNamespace, authConfigMapName, err)
	}
	rh := &requestHeader{roots: x509.NewCertPool()}
	ca := cm.Data["requestheader-client-ca-file"]
	if ca == "" || !rh.roots.AppendCertsFromPEM([]byte(ca)) {
		return fmt.Errorf("%s/%s has no requestheader-client-ca-file: is the aggregation layer enabled (--requestheader-client-ca-file)?", authConfigMapNamespace, authConfigMapName)
	}
	for key, dst := range map[string]*[]string{
		"requestheader-allowed-names":        &rh.allowedNames,
		"requestheader-username-headers":     &rh.userHeaders,
		"requestheader-group-headers":        &rh.groupHeaders,
		"requestheader-extra-headers-prefix": &rh.extraPrefixes,
	} {
		if v := cm.Data[key]; v != "" {
			if err := json.Unmarshal([]byte(v), dst); err != nil {
				return fmt.Errorf("%s/%s %s: %w", authConfigMapNamespace, authConfigMapName, key, err)
			}
		}
	}
	if len(rh.userHeaders) == 0 {
		return fmt.Errorf("%s/%s has no requestheader-username-headers", authConfigMapNamespace, authConfigMapName)
	}
	a.cur.Store(rh)
	return nil
}

// errUnauthenticated is any failure to authenticate; the caller sees 401.
var errUnauthenticated = errors.New("unauthenticated: this API is served through the Kubernetes aggregation layer only")

// authenticate returns the user the aggregator vouches for.
func (a *authenticator) authenticate(r *http.Request) (*user, error) {
	rh := a.cur.Load()
	if rh == nil || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, errUnauthenticated
	}
	certs := r.TLS.PeerCertificates
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: rh.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("%w (client certificate: %v)", errUnauthenticated, err)
	}
	if len(rh.allowedNames) > 0 && !slices.Contains(rh.allowedNames, certs[0].Subject.CommonName) {
		return nil, fmt.Errorf("%w (client certificate %q is not an allowed front proxy)", errUnauthenticated, certs[0].Subject.CommonName)
	}
	u := &user{}
	for _, h := range rh.userHeaders {
		if v := r.Header.Get(h); v != "" {
			u.Name = v
			break
		}
	}
	if u.Name == "" {
		return nil, fmt.Errorf("%w (no user header)", errUnauthenticated)
	}
	for _, h := range rh.groupHeaders {
		u.Groups = append(u.Groups, r.Header.Values(h)...)
	}
	for name, values := range r.Header {
		for _, prefix := range rh.extraPrefixes {
			if rest, ok := cutPrefixFold(name, prefix); ok && rest != "" {
				key, err := url.PathUnescape(strings.ToLower(rest))
				if err != nil {
					key = strings.ToLower(rest)
				}
				if u.Extra == nil {
					u.Extra = map[string][]string{}
				}
				u.Extra[key] = append(u.Extra[key], values...)
			}
		}
	}
	return u, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return "", false
}

// attributes is what a request asks to do, for authorization.
type attributes struct {
	Verb        string // get or list
	Namespace   string
	Resource    string
	Subresource string
	Name        string
}

// authorizer asks kube-apiserver (SubjectAccessReview) whether a user may
// do something, caching answers for cacheTTL so that a dashboard polling
// the API costs the apiserver one review per user and resource per TTL.
type authorizer struct {
	kube kubernetes.Interface
	ttl  time.Duration
	mu   sync.Mutex
	seen map[string]decision
}

type decision struct {
	allowed bool
	reason  string
	until   time.Time
}

// maxDecisions bounds the cache; past it, it starts over.
const maxDecisions = 10000

func (z *authorizer) authorize(ctx context.Context, u *user, a attributes) (bool, string, error) {
	key := fmt.Sprintf("%q %q %v %+v", u.Name, u.Groups, u.Extra, a)
	now := time.Now()
	z.mu.Lock()
	d, ok := z.seen[key]
	z.mu.Unlock()
	if ok && now.Before(d.until) {
		return d.allowed, d.reason, nil
	}
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range u.Extra {
		extra[k] = v
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: u.Name, Groups: u.Groups, Extra: extra,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Group: group, Version: version, Verb: a.Verb, Namespace: a.Namespace,
			Resource: a.Resource, Subresource: a.Subresource, Name: a.Name,
		},
	}}
	res, err := z.kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, "", fmt.Errorf("subject access review: %w", err)
	}
	d = decision{allowed: res.Status.Allowed, reason: res.Status.Reason, until: now.Add(z.ttl)}
	z.mu.Lock()
	if z.seen == nil || len(z.seen) >= maxDecisions {
		z.seen = map[string]decision{}
	}
	z.seen[key] = d
	z.mu.Unlock()
	return d.allowed, d.reason, nil
}
