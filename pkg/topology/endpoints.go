package topology

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// attachEndpoints fills every port's endpoints from the service's
// EndpointSlices. A slice names its ports after the Service ports and
// carries the number resolved for its own pods, so a named targetPort that
// differs between pods resolves per slice. When a slice gives no number, the
// targetPort is used, and a named one is looked up in the endpoint's pod.
func (b *builder) attachEndpoints(svc *Service, list []*discoveryv1.EndpointSlice) {
	for _, p := range svc.Ports {
		p.Endpoints = b.portEndpoints(svc, p, list)
	}
}

func (b *builder) portEndpoints(svc *Service, p *ServicePort, list []*discoveryv1.EndpointSlice) []Endpoint {
	if len(list) == 0 {
		return []Endpoint{}
	}
	out := make([]Endpoint, 0, 8)
	for _, es := range list {
		if es.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		sp, ok := slicePort(es, p)
		if !ok {
			continue
		}
		for i := range es.Endpoints {
			ep := &es.Endpoints[i]
			port := b.endpointPort(svc.Namespace, sp, p, ep)
			if port <= 0 {
				continue
			}
			for _, addr := range ep.Addresses {
				out = append(out, b.endpoint(addr, port, ep))
			}
		}
	}
	slices.SortFunc(out, func(a, b Endpoint) int {
		// Ready first among duplicates, so Compact below keeps the ready copy.
		return cmp.Or(cmp.Compare(a.IP, b.IP), cmp.Compare(a.Port, b.Port), compareBool(b.Ready, a.Ready), cmp.Compare(a.Pod, b.Pod))
	})
	// One address can sit in two slices while the controller moves it.
	return slices.CompactFunc(out, func(a, b Endpoint) bool { return a.IP == b.IP && a.Port == b.Port })
}

// slicePort finds the slice's entry for the service port: same name and
// protocol. A slice with no ports at all carries every port (the API's
// convention for "all ports").
func slicePort(es *discoveryv1.EndpointSlice, p *ServicePort) (*discoveryv1.EndpointPort, bool) {
	want := p.Protocol.Protocol()
	for i := range es.Ports {
		sp := &es.Ports[i]
		proto := corev1.ProtocolTCP
		if sp.Protocol != nil {
			proto = *sp.Protocol
		}
		name := ""
		if sp.Name != nil {
			name = *sp.Name
		}
		if name == p.Name && proto == want {
			return sp, true
		}
	}
	return nil, len(es.Ports) == 0
}

func (b *builder) endpointPort(namespace string, sp *discoveryv1.EndpointPort, p *ServicePort, ep *discoveryv1.Endpoint) int32 {
	if sp != nil && sp.Port != nil {
		return *sp.Port
	}
	switch {
	case p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal > 0:
		return p.TargetPort.IntVal
	case p.TargetPort.Type == intstr.String && p.TargetPort.StrVal != "":
		return b.namedPort(namespace, p.TargetPort.StrVal, p.Protocol.Protocol(), ep)
	}
	return p.Port // an unset targetPort defaults to the port
}

// namedPort resolves a named targetPort in the endpoint's own pod.
func (b *builder) namedPort(namespace, name string, proto corev1.Protocol, ep *discoveryv1.Endpoint) int32 {
	if ep.TargetRef == nil || ep.TargetRef.Kind != KindPod {
		return 0
	}
	ns := cmp.Or(ep.TargetRef.Namespace, namespace)
	pod := b.pod(ns, ep.TargetRef.Name)
	if pod == nil {
		return 0
	}
	for _, cp := range pod.Ports {
		if cp.Name == name && cp.Protocol == proto {
			return cp.Port
		}
	}
	return 0
}

func (b *builder) endpoint(addr string, port int32, ep *discoveryv1.Endpoint) Endpoint {
	c := ep.Conditions
	// Per the EndpointSlice API, an unknown ready or serving condition is to
	// be read as true.
	ready := c.Ready == nil || *c.Ready
	serving := ready
	if c.Serving != nil {
		serving = *c.Serving
	}
	e := Endpoint{
		IP:          addr,
		Port:        port,
		Ready:       ready,
		Serving:     serving,
		Terminating: c.Terminating != nil && *c.Terminating,
	}
	if ep.NodeName != nil {
		e.Node = *ep.NodeName
		e.Zone = b.in.nodeZone[e.Node]
	}
	if e.Zone == "" && ep.Zone != nil {
		e.Zone = *ep.Zone
	}
	if ep.TargetRef != nil && ep.TargetRef.Kind == KindPod {
		e.Pod = ep.TargetRef.Name
	}
	return e
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}
