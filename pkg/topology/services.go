package topology

import (
	"cmp"
	"slices"

	"github.com/nodemesh/nodemesh/pkg/annotations"
	"github.com/nodemesh/nodemesh/pkg/portalloc"
	"github.com/nodemesh/nodemesh/pkg/shadow"
	"github.com/nodemesh/nodemesh/pkg/table"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// buildServices makes a mesh Service of every meshable snapshot Service:
// one with a ClusterIP and at least one port. ExternalName and headless
// Services are reported and left out whole, never half-meshed.
// src is the snapshot's Services sorted by namespace and name.
func (b *builder) buildServices(src []*corev1.Service) []*Service {
	out := make([]*Service, 0, len(src))
	var keys []types.NamespacedName
	for _, k8s := range src {
		if reason := notMeshable(k8s); reason != "" {
			b.errs.add(KindService, k8s.Namespace, k8s.Name, "not meshable: %s", reason)
			continue
		}
		svc := b.memo.service(k8s)
		if len(svc.Ports) == 0 {
			b.errs.add(KindService, k8s.Namespace, k8s.Name, "not meshable: no port the mesh can serve")
			continue
		}
		out = append(out, svc)
		keys = append(keys, svc.Key())
	}

	names := b.names.of(keys)
	for _, svc := range out {
		svc.ShadowName = names[svc.Key()]
		svc.ShadowClusterIPs = b.shadowIPs(svc)
	}
	return out
}

func notMeshable(s *corev1.Service) string {
	switch {
	case s.Spec.Type == corev1.ServiceTypeExternalName:
		return "ExternalName Service"
	case s.Spec.ClusterIP == corev1.ClusterIPNone:
		return "headless Service (clusterIP: None)"
	case s.Spec.ClusterIP == "":
		return "no ClusterIP"
	case len(s.Spec.Ports) == 0:
		return "no ports"
	}
	return ""
}

func (b *builder) buildService(k8s *corev1.Service) *Service {
	policy, keyErrs := annotations.Parse(k8s.Annotations)
	for _, e := range keyErrs {
		b.errs.add(KindService, k8s.Namespace, k8s.Name, "%s", e.Error())
	}
	svc := &Service{
		Namespace:   k8s.Namespace,
		Name:        k8s.Name,
		MeshName:    k8s.Name + "." + k8s.Namespace + "." + b.opts.Domain,
		TrafficType: cmp.Or(policy.TrafficType, b.opts.DefaultTrafficType),
		Scheme:      cmp.Or(policy.Scheme, table.SchemeHTTP),
		Middleware:  middleware(policy),
		Stream:      streamPolicy(policy),
	}
	for _, alias := range b.opts.Aliases {
		svc.Aliases = append(svc.Aliases, k8s.Name+"."+k8s.Namespace+"."+alias)
	}
	slices.Sort(svc.Aliases)
	svc.Aliases = slices.Compact(svc.Aliases)

	for _, p := range k8s.Spec.Ports {
		kind, ok := portKind(p.Protocol, svc.TrafficType)
		if !ok {
			b.errs.add(KindService, k8s.Namespace, k8s.Name, "port %d/%s: protocol not supported by the mesh; port left out", p.Port, p.Protocol)
			continue
		}
		svc.Ports = append(svc.Ports, &ServicePort{Name: p.Name, Port: p.Port, Protocol: kind, TargetPort: p.TargetPort})
	}
	slices.SortFunc(svc.Ports, func(a, b *ServicePort) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Protocol, b.Protocol))
	})
	if len(svc.Ports) > 0 {
		b.checkPolicyPorts(k8s, svc, keyErrs)
	}
	return svc
}

// portKind decides how the proxy serves a port. A UDP port is always UDP.
// A TCP port is HTTP when the service's traffic type is http, raw TCP
// otherwise (so a "udp" service such as DNS keeps its TCP port working).
func portKind(protocol corev1.Protocol, traffic annotations.TrafficType) (shadow.Kind, bool) {
	switch protocol {
	case corev1.ProtocolUDP:
		return shadow.KindUDP, true
	case corev1.ProtocolTCP, "":
		if traffic == annotations.TrafficHTTP {
			return shadow.KindHTTP, true
		}
		return shadow.KindTCP, true
	}
	return "", false
}

// middleware maps the annotation policy onto the table's HTTP middleware. A
// rate limit without a burst gets a burst of 1, as Traefik's does.
func middleware(p annotations.Policy) table.Middleware {
	m := table.Middleware{RetryAttempts: p.RetryAttempts, CircuitBreaker: p.CircuitBreaker}
	if p.RateLimitAverage > 0 {
		m.RateLimit = &table.RateLimit{Average: p.RateLimitAverage, Burst: max(p.RateLimitBurst, 1)}
	}
	httpPolicy(&m, p.TrafficPolicy, p.RetryAttempts)
	return m
}

// shadowIPs returns the ClusterIPs of svc's shadow Service when one exists
// with the right name and points back to svc. One that points elsewhere is
// about to be rewritten by the controller, so its IP is not trusted.
func (b *builder) shadowIPs(svc *Service) []string {
	f := b.in.shadows[svc.ShadowName]
	if f == nil || !f.ok || f.src != svc.Key() {
		return nil
	}
	return f.ips
}

// allocatePorts gives every TCP and UDP port a proxy port, keeping the
// allocations read back from the existing shadow Services.
func (b *builder) allocatePorts(services []*Service) {
	var wanted []portalloc.Key
	for _, svc := range services {
		for _, p := range svc.Ports {
			if p.Protocol != shadow.KindHTTP {
				wanted = append(wanted, portalloc.Key{Service: svc.Key(), Port: p.Port, Protocol: p.Protocol.Protocol()})
			}
		}
	}
	res := portalloc.Allocate(portalloc.Ranges{TCP: b.opts.TCPPortRange, UDP: b.opts.UDPPortRange}, wanted, b.in.allocs)
	for _, svc := range services {
		for _, p := range svc.Ports {
			if p.Protocol != shadow.KindHTTP {
				p.ProxyPort = res.Ports[portalloc.Key{Service: svc.Key(), Port: p.Port, Protocol: p.Protocol.Protocol()}]
			}
		}
	}
	for _, k := range res.Exhausted {
		r := b.opts.TCPPortRange
		if k.Protocol == corev1.ProtocolUDP {
			r = b.opts.UDPPortRange
		}
		b.errs.add(KindService, k.Service.Namespace, k.Service.Name, "port %d/%s: no free proxy port in %s range %s; port not meshed", k.Port, k.Protocol, k.Protocol, r)
	}
}

// dnsRewrites lists an exact rule per host name of every service the generic
// rewrite rules get wrong (shadow.NeedsExactDNSRule): a shadow name that is
// not the plain one, or a namespace holding "--".
func (b *builder) dnsRewrites(services []*Service) []DNSRewrite {
	var out []DNSRewrite
	for _, svc := range services {
		if !shadow.NeedsExactDNSRule(svc.Key(), svc.ShadowName) {
			continue
		}
		for _, host := range append([]string{svc.MeshName}, svc.Aliases...) {
			out = append(out, DNSRewrite{Host: host, ShadowName: svc.ShadowName, ShadowNamespace: b.opts.MeshNamespace})
		}
	}
	slices.SortFunc(out, func(a, b DNSRewrite) int { return cmp.Compare(a.Host, b.Host) })
	return out
}
