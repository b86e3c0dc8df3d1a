package topology

import (
	"cmp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// inputs are the snapshot's objects indexed for the builders.
type inputs struct {
	podsByName map[types.NamespacedName]*corev1.Pod
	nodeZone   map[string]string
	slices     map[types.NamespacedName][]*discoveryv1.EndpointSlice
	shadows    map[string]*corev1.Service
}

// zoneLabel is the well-known node zone label.
const zoneLabel = "topology.kubernetes.io/zone"

func (b *builder) indexInputs() {
	s := b.snap
	in := inputs{
		podsByName: make(map[types.NamespacedName]*corev1.Pod, len(s.Pods)),
		nodeZone:   make(map[string]string, len(s.Nodes)),
		slices:     make(map[types.NamespacedName][]*discoveryv1.EndpointSlice, len(s.Services)),
		shadows:    make(map[string]*corev1.Service, len(s.ShadowServices)),
	}
	for _, p := range s.Pods {
		in.podsByName[nn(p.Namespace, p.Name)] = p
	}
	for _, n := range s.Nodes {
		if z := n.Labels[zoneLabel]; z != "" {
			in.nodeZone[n.Name] = z
		}
	}
	for _, es := range s.EndpointSlices {
		svc := es.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		k := nn(es.Namespace, svc)
		in.slices[k] = append(in.slices[k], es)
	}
	for k, list := range in.slices {
		slices.SortFunc(list, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) })
		in.slices[k] = list
	}
	for _, svc := range s.ShadowServices {
		if svc.Namespace == b.opts.MeshNamespace {
			in.shadows[svc.Name] = svc
		}
	}
	b.in = in
}

// buildPods lists the identity behind every pod IP. Pods without an IP,
// finished pods (their IP may already be reused) and hostNetwork pods (their
// IP is the node's, shared by every such pod) get none. When two remaining
// pods claim one IP, a pod that is not being deleted wins; if that does not
// settle it, the IP gets no identity and both pods get an error, since a
// wrong identity is worse than none.
func (b *builder) buildPods() []*Pod {
	byIP := map[string][]*corev1.Pod{}
	for _, p := range b.snap.Pods {
		if p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		for _, ip := range podIPs(p) {
			byIP[ip] = append(byIP[ip], p)
		}
	}
	out := make([]*Pod, 0, len(byIP))
	for ip, claim := range byIP {
		if len(claim) > 1 {
			live := slices.DeleteFunc(slices.Clone(claim), func(p *corev1.Pod) bool { return p.DeletionTimestamp != nil })
			if len(live) != 1 {
				for _, p := range claim {
					b.errs.add(KindPod, p.Namespace, p.Name, "pod IP %s is claimed by %d pods; it gets no identity until only one is left", ip, len(claim))
				}
				continue
			}
			claim = live
		}
		p := claim[0]
		sa := p.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		out = append(out, &Pod{IP: ip, Namespace: p.Namespace, Name: p.Name, ServiceAccount: sa, Node: p.Spec.NodeName, Workload: workload(p)})
	}
	slices.SortFunc(out, func(a, b *Pod) int { return cmp.Compare(a.IP, b.IP) })
	return out
}

func podIPs(p *corev1.Pod) []string {
	var ips []string
	for _, ip := range p.Status.PodIPs {
		if ip.IP != "" && !slices.Contains(ips, ip.IP) {
			ips = append(ips, ip.IP)
		}
	}
	if p.Status.PodIP != "" && !slices.Contains(ips, p.Status.PodIP) {
		ips = append(ips, p.Status.PodIP)
	}
	return ips
}

// workload names a pod's owning workload, a bounded metrics label. A
// ReplicaSet named "<deployment>-<pod-template-hash>" belongs to that
// Deployment.
func workload(p *corev1.Pod) string {
	owner := metav1.GetControllerOf(p)
	if owner == nil {
		return "Pod/" + p.Name
	}
	switch owner.Kind {
	case "ReplicaSet":
		if h := p.Labels["pod-template-hash"]; h != "" {
			if base, ok := strings.CutSuffix(owner.Name, "-"+h); ok && base != "" {
				return "Deployment/" + base
			}
		}
		return "ReplicaSet/" + owner.Name
	case "StatefulSet", "DaemonSet", "Job", "Deployment":
		return owner.Kind + "/" + owner.Name
	}
	return "Pod/" + p.Name
}
