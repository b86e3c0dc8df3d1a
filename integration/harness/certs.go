package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"time"

	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// keyPair is a certificate with its private key, both also PEM-encoded.
type keyPair struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

// newCA makes a self-signed CA. ECDSA P-256 keys take microseconds to make,
// where RSA-2048 would add about a second to every cluster start.
func newCA(commonName string) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	cert, err := certutil.NewSelfSignedCACert(certutil.Config{CommonName: commonName}, key)
	if err != nil {
		return nil, err
	}
	return encodePair(cert, key)
}

// leaf describes a certificate for issue.
type leaf struct {
	commonName string
	groups     []string // Organization: the Kubernetes groups of a client
	server     bool     // a serving certificate rather than a client one
	ips        []net.IP
	dnsNames   []string
}

// issue signs a leaf certificate with the CA. client-go's cert package only
// makes self-signed certificates (the signing helpers live in kubeadm, inside
// k8s.io/kubernetes), so this is the one place we call crypto/x509 ourselves.
func (ca *keyPair) issue(l leaf) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	usage := x509.ExtKeyUsageClientAuth
	if l.server {
		usage = x509.ExtKeyUsageServerAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)),
		Subject:      pkix.Name{CommonName: l.commonName, Organization: l.groups},
		NotBefore:    time.Now().Add(-time.Hour), // tolerate clock skew between processes
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  l.ips,
		DNSNames:     l.dnsNames,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return encodePair(cert, key)
}

func encodePair(cert *x509.Certificate, key *ecdsa.PrivateKey) (*keyPair, error) {
	certPEM, err := certutil.EncodeCertificates(cert)
	if err != nil {
		return nil, err
	}
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return nil, err
	}
	return &keyPair{cert: cert, key: key, certPEM: certPEM, keyPEM: keyPEM}, nil
}

// write stores the pair as dir/name.crt and dir/name.key.
func (kp *keyPair) write(dir, name string) (certPath, keyPath string, err error) {
	certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := certutil.WriteCert(certPath, kp.certPEM); err != nil {
		return "", "", err
	}
	if err := keyutil.WriteKey(keyPath, kp.keyPEM); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// pki holds the files of a cluster's credentials.
type pki struct {
	ca           *keyPair
	admin        *keyPair // user "nodemesh-admin" in system:masters
	controllers  *keyPair // user system:kube-controller-manager
	caFile       string
	servingCert  string
	servingKey   string
	saKey        string // signs and verifies service-account tokens
	frontProxyCA string // requestheader client CA, for aggregated APIs
	proxyCert    string // front-proxy-client: how the aggregator calls them
	proxyKey     string
}

// newPKI makes and writes the credentials of a control plane whose
// apiserver serves on apiserverIP.
func newPKI(dir string, apiserverIP net.IP) (*pki, error) {
	var p pki
	var err error
	if p.ca, err = newCA("nodemesh-harness-ca"); err != nil {
		return nil, err
	}
	if p.caFile, _, err = p.ca.write(dir, "ca"); err != nil {
		return nil, err
	}
	serving, err := p.ca.issue(leaf{
		commonName: "kube-apiserver",
		server:     true,
		// 10.96.0.1 is the "kubernetes" Service's cluster IP.
		ips:      []net.IP{apiserverIP, net.ParseIP("10.96.0.1"), net.ParseIP("127.0.0.1")},
		dnsNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
	})
	if err != nil {
		return nil, err
	}
	if p.servingCert, p.servingKey, err = serving.write(dir, "apiserver"); err != nil {
		return nil, err
	}
	if p.admin, err = p.ca.issue(leaf{commonName: "nodemesh-admin", groups: []string{"system:masters"}}); err != nil {
		return nil, err
	}
	if p.controllers, err = p.ca.issue(leaf{commonName: "system:kube-controller-manager"}); err != nil {
		return nil, err
	}
	sa, err := newCA("service-accounts") // only its key is used
	if err != nil {
		return nil, err
	}
	if _, p.saKey, err = sa.write(dir, "sa"); err != nil {
		return nil, err
	}
	frontCA, err := newCA("front-proxy-ca")
	if err != nil {
		return nil, err
	}
	if p.frontProxyCA, _, err = frontCA.write(dir, "front-proxy-ca"); err != nil {
		return nil, err
	}
	proxy, err := frontCA.issue(leaf{commonName: "front-proxy-client"})
	if err != nil {
		return nil, fmt.Errorf("front proxy client: %w", err)
	}
	if p.proxyCert, p.proxyKey, err = proxy.write(dir, "front-proxy-client"); err != nil {
		return nil, err
	}
	return &p, nil
}
