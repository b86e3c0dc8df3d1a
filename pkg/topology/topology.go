// Package topology turns a snapshot of the cluster into the mesh's plain data
// model: mesh services with their ports, endpoints, shadow names and proxy
// ports; pods by IP; SMI splits, route groups and traffic targets; and every
// per-object error found on the way. It is the first of the two pure
// builders (the second is pkg/routing): no clients, no clock, no logging.
//
// A Topology is deterministic (every slice sorted, no map order leaks) and
// JSON-encodable: the controller serves it at /api/topology/current.
package topology

import (
	"github.com/nodemesh/nodemesh/pkg/annotations"
	"github.com/nodemesh/nodemesh/pkg/portalloc"
	"github.com/nodemesh/nodemesh/pkg/shadow"
	"github.com/nodemesh/nodemesh/pkg/snapshot"
	"github.com/nodemesh/nodemesh/pkg/table"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Options configure Build. Every zero value means the team default.
type Options struct {
	// MeshNamespace holds the shadow services; "" means "nodemesh".
	MeshNamespace string `json:"meshNamespace"`
	// Domain gives mesh names "name.ns.<domain>"; "" means "mesh".
	Domain string `json:"domain"`
	// Aliases are extra domains ("traefik.mesh", "maesh"); none by default.
	Aliases []string `json:"aliases,omitempty"`
	// DefaultTrafficType applies to Services without a traffic-type
	// annotation; "" means http.
	DefaultTrafficType annotations.TrafficType `json:"defaultTrafficType"`
	// ProxyHTTPPort is the proxies' shared HTTP listener; 0 means 7000.
	ProxyHTTPPort int32 `json:"proxyHTTPPort"`
	// TCPPortRange and UDPPortRange hold the proxy ports handed to TCP and UDP
	// service ports; zero means 10000-10999 and 11000-11499.
	TCPPortRange portalloc.Range `json:"tcpPortRange"`
	UDPPortRange portalloc.Range `json:"udpPortRange"`
	// ACL turns on access control (TrafficTargets fill the table's Allow).
	ACL bool `json:"acl"`
}

// Defaults (team contract).
const (
	DefaultMeshNamespace = "nodemesh"
	DefaultDomain        = "mesh"
	DefaultProxyHTTPPort = 7000
)

// WithDefaults returns o with every zero field set to its default.
func (o Options) WithDefaults() Options {
	if o.MeshNamespace == "" {
		o.MeshNamespace = DefaultMeshNamespace
	}
	if o.Domain == "" {
		o.Domain = DefaultDomain
	}
	if o.DefaultTrafficType == "" {
		o.DefaultTrafficType = annotations.TrafficHTTP
	}
	if o.ProxyHTTPPort == 0 {
		o.ProxyHTTPPort = DefaultProxyHTTPPort
	}
	if o.TCPPortRange == (portalloc.Range{}) {
		o.TCPPortRange = portalloc.DefaultTCPRange
	}
	if o.UDPPortRange == (portalloc.Range{}) {
		o.UDPPortRange = portalloc.DefaultUDPRange
	}
	return o
}

// Topology is the mesh data model built from one snapshot.
type Topology struct {
	// Options are the options Build used, defaults applied.
	Options Options `json:"options"`
	// SMI is what SMI discovery found (copied from the snapshot).
	SMI snapshot.SMIStatus `json:"smi"`
	// Services are the mesh services, sorted by namespace then name.
	Services []*Service `json:"services"`
	// Splits are every TrafficSplit, sorted; inactive ones carry an error.
	Splits []*Split `json:"splits,omitempty"`
	// HTTPRouteGroups, TCPRoutes and UDPRoutes are the SMI route specs,
	// sorted, with invalid matches dropped (and reported).
	HTTPRouteGroups []*HTTPRouteGroup `json:"httpRouteGroups,omitempty"`
	TCPRoutes       []*StreamRoute    `json:"tcpRoutes,omitempty"`
	UDPRoutes       []*StreamRoute    `json:"udpRoutes,omitempty"`
	// TrafficTargets are the access rules, normalised, sorted.
	TrafficTargets []*TrafficTarget `json:"trafficTargets,omitempty"`
	// Pods are the pod identities by IP, sorted by IP.
	Pods []*Pod `json:"pods,omitempty"`
	// Nodes are the nodes whose zone is known, sorted by name (for the
	// proxies' zone-aware balancing).
	Nodes []table.Node `json:"nodes,omitempty"`
	// DNSRewrites are the exact DNS rules needed for services whose shadow
	// name is not the plain "<name>--<namespace>", sorted by Host.
	DNSRewrites []DNSRewrite `json:"dnsRewrites,omitempty"`
	// Errors are every per-object problem found, sorted.
	Errors []ObjectError `json:"errors,omitempty"`

	idx *index
}

// Service is one mesh service.
type Service struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// MeshName is "name.ns.<domain>"; Aliases the same under each alias
	// domain.
	MeshName string   `json:"meshName"`
	Aliases  []string `json:"aliases,omitempty"`
	// TrafficType is the service's mode: it decides whether its TCP ports are
	// HTTP or raw TCP. UDP ports are always UDP.
	TrafficType annotations.TrafficType `json:"trafficType"`
	// Scheme is the protocol towards the backends of HTTP ports.
	Scheme table.Scheme `json:"scheme"`
	// Middleware is the HTTP policy from annotations.
	Middleware table.Middleware `json:"middleware"`
	// Stream is the TCP/UDP policy from annotations.
	Stream StreamPolicy `json:"stream,omitzero"`
	// ShadowName is the shadow Service's name in the mesh namespace.
	ShadowName string `json:"shadowName"`
	// ShadowClusterIPs are the shadow Service's ClusterIPs, once it exists.
	ShadowClusterIPs []string `json:"shadowClusterIPs,omitempty"`
	// Ports are the meshed ports, sorted by port number then protocol.
	Ports []*ServicePort `json:"ports"`
	// Split names the TrafficSplit active on this service as root, if any.
	Split string `json:"split,omitempty"`
}

// Key returns the service's namespace/name.
func (s *Service) Key() types.NamespacedName {
	return types.NamespacedName{Namespace: s.Namespace, Name: s.Name}
}

// Ref returns the service as a routing-table reference.
func (s *Service) Ref() table.ServiceRef {
	return table.ServiceRef{Namespace: s.Namespace, Name: s.Name}
}

// Port returns the port with this number and kind's Kubernetes protocol, or
// nil.
func (s *Service) Port(number int32, kind shadow.Kind) *ServicePort {
	for _, p := range s.Ports {
		if p.Port == number && p.Protocol.Protocol() == kind.Protocol() {
			return p
		}
	}
	return nil
}

// ServicePort is one meshed port of a service.
type ServicePort struct {
	// Name is the Service port's name ("" for a single unnamed port).
	Name string `json:"name,omitempty"`
	// Port is the Service port number, which clients call.
	Port int32 `json:"port"`
	// Protocol is how the proxy serves it: http, tcp or udp.
	Protocol shadow.Kind `json:"protocol"`
	// TargetPort is the Service's targetPort, as written (number or name).
	TargetPort intstr.IntOrString `json:"targetPort"`
	// ProxyPort is the allocated TCP/UDP proxy port; 0 for HTTP, and for a
	// stream port whose range is exhausted (it is then not routed).
	ProxyPort int32 `json:"proxyPort,omitempty"`
	// Endpoints are every endpoint of this port, ready or not, sorted by IP
	// then port. Named targetPorts are already resolved per pod.
	Endpoints []Endpoint `json:"endpoints"`
}

// Endpoint is one backend address of one service port.
type Endpoint struct {
	IP   string `json:"ip"`
	Port int32  `json:"port"`
	// Ready endpoints receive traffic; the others are kept for status.
	Ready       bool `json:"ready"`
	Serving     bool `json:"serving"`
	Terminating bool `json:"terminating,omitempty"`
	// Node is the node the endpoint runs on; Zone is that Node's
	// topology.kubernetes.io/zone label (or the slice's zone hint).
	Node string `json:"node,omitempty"`
	Zone string `json:"zone,omitempty"`
	// Pod is the name of the backing pod, when the slice says.
	Pod string `json:"pod,omitempty"`
}

// Pod is the identity behind one pod IP.
type Pod struct {
	IP             string `json:"ip"`
	Namespace      string `json:"namespace"`
	Name           string `json:"name"`
	ServiceAccount string `json:"serviceAccount"`
	Node           string `json:"node,omitempty"`
	// Workload is "Deployment/web", "StatefulSet/db", "DaemonSet/agent",
	// "ReplicaSet/x", "Job/y", or "Pod/<name>" when there is no owner.
	Workload string `json:"workload"`
}

// DNSRewrite is one exact DNS rewrite: a mesh host name (domain or alias)
// whose shadow Service does not carry the plain name the regex rule yields.
type DNSRewrite struct {
	// Host is "name.ns.<domain>", without a trailing dot.
	Host string `json:"host"`
	// ShadowName is the shadow Service's name; it lives in ShadowNamespace.
	ShadowName      string `json:"shadowName"`
	ShadowNamespace string `json:"shadowNamespace"`
}

// ShadowSpecs returns the desired shadow Service of every mesh service with
// at least one routable port, for shadow.Desired.
func (t *Topology) ShadowSpecs() []shadow.Spec {
	out := make([]shadow.Spec, 0, len(t.Services))
	for _, s := range t.Services {
		spec := shadow.Spec{Namespace: t.Options.MeshNamespace, Name: s.ShadowName, Source: s.Key()}
		for _, p := range s.Ports {
			target := p.ProxyPort
			if p.Protocol == shadow.KindHTTP {
				target = t.Options.ProxyHTTPPort
			}
			if target == 0 {
				continue
			}
			spec.Ports = append(spec.Ports, shadow.Port{Kind: p.Protocol, Port: p.Port, TargetPort: target})
		}
		if len(spec.Ports) > 0 {
			out = append(out, spec)
		}
	}
	return out
}
