package controller

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/nodemesh/nodemesh/pkg/annotations"
	"github.com/nodemesh/nodemesh/pkg/dns"
	"github.com/nodemesh/nodemesh/pkg/portalloc"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

// Config is the static configuration of `nodemesh controller`. Its field
// names are the documented options (--mesh-namespace, NODEMESH_MESH_NAMESPACE,
// ...); DefaultConfig holds the defaults.
type Config struct {
	ConfigFile string `description:"Configuration file (YAML or TOML)." export:"true"`
	Kubeconfig string `description:"Path to a kubeconfig; empty means $KUBECONFIG, then ~/.kube/config, then the in-cluster service account." export:"true"`

	MeshNamespace    string   `description:"Namespace of the proxies and the shadow services; always ignored for user objects." export:"true"`
	Domain           string   `description:"Domain of mesh names: name.namespace.<domain>." export:"true"`
	Aliases          bool     `description:"Also serve name.namespace.traefik.mesh and name.namespace.maesh, for users moving from Traefik Mesh." export:"true"`
	DefaultMode      string   `description:"Traffic type of TCP service ports without a traffic-type annotation: http or tcp." export:"true"`
	WatchNamespaces  []string `description:"Namespaces to mesh (comma separated); empty means all." export:"true"`
	IgnoreNamespaces []string `description:"Namespaces never meshed (comma separated); kube-system and the mesh namespace always are." export:"true"`
	ACL              bool     `description:"Access control: only what SMI TrafficTargets allow passes." export:"true"`

	APIPort       int    `description:"Port of the controller API, the proxies' table watch and /metrics." export:"true"`
	ProxyHTTPPort int32  `description:"The proxies' shared HTTP port, the targetPort of HTTP shadow ports." export:"true"`
	TCPPortRange  string `description:"Proxy ports handed to TCP service ports, MIN-MAX." export:"true"`
	UDPPortRange  string `description:"Proxy ports handed to UDP service ports, MIN-MAX." export:"true"`

	LeaderElect    bool          `description:"Elect a leader through a Lease so several replicas can run; only the leader writes shadow services." export:"true"`
	LeaseName      string        `description:"Name of the leader election Lease." export:"true"`
	LeaseNamespace string        `description:"Namespace of the Lease; empty means the mesh namespace." export:"true"`
	LeaseDuration  time.Duration `description:"How long a non-leader waits before taking over an unrenewed lease." export:"true"`
	RenewDeadline  time.Duration `description:"How long the leader keeps trying to renew before it steps down." export:"true"`
	RetryPeriod    time.Duration `description:"How often candidates retry to acquire or renew the lease." export:"true"`
	Identity       string        `description:"This replica's name in the lease; empty means the host name plus a random suffix." export:"true"`

	KubeQPS              int           `description:"Sustained requests per second to the apiserver (client-go's default of 5 is what made Traefik Mesh slow)." export:"true"`
	KubeBurst            int           `description:"Request burst to the apiserver." export:"true"`
	Workers              int           `description:"Shadow service writers working in parallel." export:"true"`
	ResyncPeriod         time.Duration `description:"Informer resync period; 0 turns resyncs off." export:"true"`
	ChooseClusterIPs     bool          `description:"Choose each new shadow Service's ClusterIP (a hash of its name within the cluster's Service CIDR) instead of letting the apiserver allocate one: the apiserver allocates dynamic ClusterIPs one at a time, and named ones in parallel. Needs get on the ServiceCIDR \"kubernetes\" (Kubernetes 1.33+); without it, dynamic." export:"true"`
	SMIDiscoveryInterval time.Duration `description:"How often to check which SMI versions the apiserver serves. When that changes (SMI CRDs installed, upgraded or removed), the controller switches its SMI informers and rebuilds, without a restart. 0 checks only at start." export:"true"`
	PatchDNS             bool          `description:"Patch the cluster DNS (CoreDNS in kube-system) with the mesh domain's rewrite rules while this replica leads, and repair them when something overwrites them." export:"true"`
	ClusterDomain        string        `description:"The cluster's DNS domain, where --patch-dns sends the rewritten names." export:"true"`
	KubeDNSStubIP        string        `description:"With --patch-dns on a kube-dns cluster: ClusterIP of the CoreDNS the mesh runs, which kube-dns forwards the mesh domains to." export:"true"`
	GCPercent            int           `description:"Go GC target percentage (GOGC) of the controller process; lower keeps RSS nearer the live heap at some CPU cost; 0 keeps Go's default ($GOGC, else 100)." export:"true"`
	TrimStartupPages     bool          `description:"Twenty seconds after start, ask the kernel to drop the executable's pages that start-up touched (client-go registers every API group's types at start); what the controller still runs is paged back in. See docs/controller.md." export:"true"`
	Pprof                bool          `description:"Serve Go's runtime profiles (net/http/pprof) under /debug/pprof/ on the API port." export:"true"`
	Dashboard            bool          `description:"Serve the read-only web dashboard at /dashboard/ on the API port (it lists proxy pods and Events, and scrapes the proxies' metrics)." export:"true"`
}

// DefaultConfig returns the defaults of every option.
func DefaultConfig() Config {
	return Config{
		MeshNamespace:        topology.DefaultMeshNamespace,
		Domain:               topology.DefaultDomain,
		DefaultMode:          string(annotations.TrafficHTTP),
		APIPort:              9000,
		ProxyHTTPPort:        topology.DefaultProxyHTTPPort,
		TCPPortRange:         portalloc.DefaultTCPRange.String(),
		UDPPortRange:         portalloc.DefaultUDPRange.String(),
		LeaderElect:          true,
		LeaseName:            "nodemesh-controller",
		LeaseDuration:        15 * time.Second,
		RenewDeadline:        10 * time.Second,
		RetryPeriod:          2 * time.Second,
		ClusterDomain:        dns.DefaultClusterDomain,
		KubeQPS:              200,
		KubeBurst:            400,
		Workers:              8,
		ResyncPeriod:         10 * time.Minute,
		SMIDiscoveryInterval: 30 * time.Second,
		ChooseClusterIPs:     true,
		// Rebuilds allocate a full snapshot, topology and table encoding;
		// with Go's default the heap doubles between collections. Rebuilds
		// are bursty, so collecting twice as often costs little CPU.
		GCPercent:        50,
		TrimStartupPages: true,
	}
}

// AliasDomains are the domains --aliases adds.
var AliasDomains = []string{"traefik.mesh", "maesh"}

// AlwaysIgnored are namespaces whose user objects are never meshed, besides
// the mesh namespace.
var AlwaysIgnored = []string{"kube-system"}

// TopologyOptions validates c and returns the builder options it implies.
func (c Config) TopologyOptions() (topology.Options, error) {
	var errs []error
	mode := annotations.TrafficType(c.DefaultMode)
	if mode != annotations.TrafficHTTP && mode != annotations.TrafficTCP {
		errs = append(errs, fmt.Errorf("default-mode %q: want http or tcp", c.DefaultMode))
	}
	tcp, err := portalloc.ParseRange(c.TCPPortRange)
	errs = append(errs, err)
	udp, err := portalloc.ParseRange(c.UDPPortRange)
	errs = append(errs, err)
	if c.MeshNamespace == "" {
		errs = append(errs, errors.New("mesh-namespace must not be empty"))
	}
	if c.Domain == "" {
		errs = append(errs, errors.New("domain must not be empty"))
	}
	if c.ProxyHTTPPort < 1 || c.ProxyHTTPPort > 65535 {
		errs = append(errs, fmt.Errorf("proxy-http-port %d: want 1-65535", c.ProxyHTTPPort))
	}
	if p := c.ProxyHTTPPort; tcp.Contains(p) || udp.Contains(p) {
		errs = append(errs, fmt.Errorf("proxy-http-port %d lies inside a proxy port range", p))
	}
	if tcp.Overlaps(udp) && tcp != (portalloc.Range{}) && udp != (portalloc.Range{}) {
		// TCP and UDP may share numbers in principle, but keeping them apart
		// makes a proxy's listeners easy to read; the defaults do.
		errs = append(errs, fmt.Errorf("tcp-port-range %s overlaps udp-port-range %s", tcp, udp))
	}
	if c.APIPort < 0 || c.APIPort > 65535 {
		errs = append(errs, fmt.Errorf("api-port %d: want 0-65535", c.APIPort))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("workers %d: want at least 1", c.Workers))
	}
	if c.KubeQPS <= 0 || c.KubeBurst < 1 {
		errs = append(errs, fmt.Errorf("kube-qps %d and kube-burst %d must be positive", c.KubeQPS, c.KubeBurst))
	}
	if c.LeaderElect && !(c.LeaseDuration > c.RenewDeadline && c.RenewDeadline > c.RetryPeriod && c.RetryPeriod > 0) {
		errs = append(errs, errors.New("want lease-duration > renew-deadline > retry-period > 0"))
	}
	if err := errors.Join(errs...); err != nil {
		return topology.Options{}, err
	}
	opts := topology.Options{
		MeshNamespace:      c.MeshNamespace,
		Domain:             c.Domain,
		DefaultTrafficType: mode,
		ProxyHTTPPort:      c.ProxyHTTPPort,
		TCPPortRange:       tcp,
		UDPPortRange:       udp,
		ACL:                c.ACL,
	}
	if c.Aliases {
		opts.Aliases = slices.Clone(AliasDomains)
	}
	return opts, nil
}

// leaseNamespace is where the Lease lives.
func (c Config) leaseNamespace() string {
	if c.LeaseNamespace != "" {
		return c.LeaseNamespace
	}
	return c.MeshNamespace
}

// identity is this replica's name in the Lease: the host name plus a
// random suffix, so two replicas on one host (or in one test) differ.
func (c Config) identity() string {
	if c.Identity != "" {
		return c.Identity
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "nodemesh-controller"
	}
	return host + "_" + string(uuid.NewUUID())
}
