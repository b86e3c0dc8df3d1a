package harness

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ServiceCIDR is the Service cluster IP range of every harness cluster.
const ServiceCIDR = "10.96.0.0/16"

// DefaultControllers are the kube-controller-manager controllers Start runs
// unless WithControllers says otherwise. node-lifecycle is left out on
// purpose: with no kubelet to renew leases it would mark every Node NotReady
// and evict its pods.
var DefaultControllers = []string{
	"endpointslice-controller",
	"endpointslice-mirroring-controller",
	"endpoints-controller",
	"namespace-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"garbage-collector-controller",
	"root-ca-certificate-publisher-controller",
}

// addressing is where a cluster's components listen.
type addressing struct {
	etcd      netip.Addr // loopback, private to the cluster
	apiserver netip.Addr // non-loopback on lo, see the package doc
}

const (
	etcdClientPort = 2379
	etcdPeerPort   = 2380
	apiserverPort  = 6443
)

func (a addressing) etcdURL() string {
	return fmt.Sprintf("http://%s:%d", a.etcd, etcdClientPort)
}

func (a addressing) apiserverURL() string {
	return fmt.Sprintf("https://%s:%d", a.apiserver, apiserverPort)
}

func etcdArgs(a addressing, dataDir string) []string {
	peer := fmt.Sprintf("http://%s:%d", a.etcd, etcdPeerPort)
	return []string{
		"--name=harness",
		"--data-dir=" + dataDir,
		"--listen-client-urls=" + a.etcdURL(),
		"--advertise-client-urls=" + a.etcdURL(),
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=harness=" + peer,
		// The data is thrown away with the test, so durability buys nothing.
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	}
}

func apiserverArgs(a addressing, p *pki) []string {
	return []string{
		"--etcd-servers=" + a.etcdURL(),
		"--bind-address=" + a.apiserver.String(),
		"--advertise-address=" + a.apiserver.String(),
		fmt.Sprintf("--secure-port=%d", apiserverPort),
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--tls-cert-file=" + p.servingCert,
		"--tls-private-key-file=" + p.servingKey,
		"--client-ca-file=" + p.caFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.saKey,
		"--service-account-signing-key-file=" + p.saKey,
		// The aggregation layer, for APIServices such as metrics.smi-spec.io.
		"--requestheader-client-ca-file=" + p.frontProxyCA,
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + p.proxyCert,
		"--proxy-client-key-file=" + p.proxyKey,
		// kube-proxy runs only where a test starts one (StartKubeProxy), so
		// the aggregator must dial an endpoint IP of the APIService's
		// Service rather than its cluster IP.
		"--enable-aggregator-routing=true",
		"--profiling=false",
		"--v=1",
	}
}

func controllerManagerArgs(kubeconfig string, p *pki, controllers []string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--controllers=" + strings.Join(controllers, ","),
		"--leader-elect=false",
		"--secure-port=0", // nothing scrapes it; readiness is observed through the API
		"--service-account-private-key-file=" + p.saKey,
		"--root-ca-file=" + p.caFile,
		// Each controller acts as its own ServiceAccount with its bootstrap
		// RBAC role, as kubeadm sets it up; system:kube-controller-manager
		// alone may not write EndpointSlices.
		"--use-service-account-credentials=true",
		"--profiling=false",
		"--v=1",
	}
}

// restConfigFor is a client config for the apiserver with the given client
// certificate.
func restConfigFor(a addressing, p *pki, client *keyPair) *rest.Config {
	return &rest.Config{
		Host: a.apiserverURL(),
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   p.ca.certPEM,
			CertData: client.certPEM,
			KeyData:  client.keyPEM,
		},
		// Tests create objects in bursts; client-side throttling only slows them.
		QPS:   200,
		Burst: 400,
	}
}

// writeKubeconfig stores cfg as a kubeconfig file with everything embedded.
func writeKubeconfig(dir, name string, cfg *rest.Config) (string, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["harness"] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: cfg.CAData,
	}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData,
		ClientKeyData:         cfg.KeyData,
	}
	kc.Contexts["harness"] = &clientcmdapi.Context{Cluster: "harness", AuthInfo: name}
	kc.CurrentContext = "harness"
	path := filepath.Join(dir, name+".kubeconfig")
	return path, clientcmd.WriteToFile(*kc, path)
}
