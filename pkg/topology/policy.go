package topology

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodemesh/nodemesh/pkg/annotations"
	"github.com/nodemesh/nodemesh/pkg/shadow"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// StreamPolicy is the TCP/UDP part of a service's traffic policy
// (docs/traffic-policy.md). Zero values mean off or the proxy's default.
type StreamPolicy struct {
	// IdleTimeout ends idle TCP connections and UDP sessions.
	IdleTimeout table.Duration `json:"idleTimeout,omitempty"`
	// MaxConnections caps open TCP connections per proxy.
	MaxConnections int `json:"maxConnections,omitempty"`
	// Locality prefers near endpoints.
	Locality *table.Locality `json:"locality,omitempty"`
}

// httpPolicy sets the traffic-policy fields of m from the annotations,
// with the documented defaults filled in, so the table says exactly what
// the proxy does.
func httpPolicy(m *table.Middleware, p annotations.TrafficPolicy, retryAttempts int) {
	m.RequestTimeout = table.Duration(p.RequestTimeout)
	m.MaxRequests = p.MaxRequests
	if retryAttempts > 1 {
		b := &table.RetryBudget{
			Percent:      annotations.DefaultRetryBudgetPercent,
			MinPerSecond: annotations.DefaultRetryBudgetMinPerSecond,
			Window:       table.Duration(annotations.DefaultRetryBudgetWindow),
		}
		if p.RetryBudget != nil {
			b.Percent = *p.RetryBudget
		}
		if p.RetryBudgetMinPerSecond != nil {
			b.MinPerSecond = *p.RetryBudgetMinPerSecond
		}
		m.RetryBudget = b
	}
	if p.OutlierConsecutiveErrors > 0 {
		base := cmp.Or(p.OutlierBaseEjectionTime, annotations.DefaultOutlierBaseEjectionTime)
		m.Outlier = &table.Outlier{
			ConsecutiveErrors: p.OutlierConsecutiveErrors,
			BaseEjectionTime:  table.Duration(base),
			// The default cap never sits below an explicit base.
			MaxEjectionTime:    table.Duration(cmp.Or(p.OutlierMaxEjectionTime, max(annotations.DefaultOutlierMaxEjectionTime, base))),
			MaxEjectionPercent: cmp.Or(p.OutlierMaxEjectionPercent, annotations.DefaultOutlierMaxEjectionPct),
		}
	}
	m.Locality = locality(p)
	if p.FaultAbortPercent > 0 || p.FaultDelayPercent > 0 {
		f := &table.Faults{DelayPercent: p.FaultDelayPercent}
		if f.DelayPercent > 0 {
			f.Delay = table.Duration(p.FaultDelay)
		}
		if p.FaultAbortPercent > 0 {
			f.AbortPercent = p.FaultAbortPercent
			f.AbortStatus = cmp.Or(p.FaultAbortStatus, annotations.DefaultFaultAbortStatus)
		}
		m.Faults = f
	}
}

// streamPolicy maps the annotations onto the TCP/UDP policy.
func streamPolicy(p annotations.Policy) StreamPolicy {
	return StreamPolicy{
		IdleTimeout:    table.Duration(p.IdleTimeout),
		MaxConnections: p.MaxConnections,
		Locality:       locality(p.TrafficPolicy),
	}
}

func locality(p annotations.TrafficPolicy) *table.Locality {
	if p.Locality == "" {
		return nil
	}
	return &table.Locality{Prefer: p.Locality, MaxInFlight: cmp.Or(p.LocalityMaxInFlight, annotations.DefaultLocalityMaxInFlight)}
}

// buildNodes lists the nodes with a known zone, sorted by name.
func (b *builder) buildNodes() []table.Node {
	out := make([]table.Node, 0, len(b.in.nodeZone))
	for name, zone := range b.in.nodeZone {
		out = append(out, table.Node{Name: name, Zone: zone})
	}
	slices.SortFunc(out, func(a, b table.Node) int { return cmp.Compare(a.Name, b.Name) })
	if len(out) == 0 {
		return nil
	}
	return out
}

// checkPolicyPorts reports traffic-policy keys that no port of svc can use
// (request-timeout on a TCP service, max-connections on an HTTP one), so
// that a key that silently did nothing still shows up as an error naming
// it. Keys whose value was already reported as invalid are not reported
// twice.
func (b *builder) checkPolicyPorts(k8s *corev1.Service, svc *Service, invalid []annotations.KeyError) {
	has := map[shadow.Kind]bool{}
	for _, p := range svc.Ports {
		has[p.Protocol] = true
	}
	bad := map[string]bool{}
	for _, e := range invalid {
		bad[e.Annotation] = true
	}
	report := func(keys []string, usable bool, kinds string) {
		if usable {
			return
		}
		for _, k := range keys {
			if name, value, ok := annotations.Find(k8s.Annotations, k); ok && !bad[name] {
				b.errs.add(KindService, k8s.Namespace, k8s.Name, "annotation %s=%q: has no effect: the service has no %s port", name, value, kinds)
			}
		}
	}
	report(annotations.HTTPOnlyKeys, has[shadow.KindHTTP], "HTTP")
	report([]string{"idle-timeout"}, has[shadow.KindTCP] || has[shadow.KindUDP], "TCP or UDP")
	report([]string{"max-connections"}, has[shadow.KindTCP], "TCP")
}
