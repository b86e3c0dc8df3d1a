package table

import "time"

// Bounds of the traffic-policy fields (docs/traffic-policy.md). They are
// wide: they refuse nonsense, not unusual choices.
const (
	// MaxPolicyDuration bounds every policy duration (timeouts, ejection
	// times, the injected delay).
	MaxPolicyDuration = 24 * time.Hour
	// MaxOutlierErrors bounds Outlier.ConsecutiveErrors.
	MaxOutlierErrors = 1000
	// MinRetryBudgetWindow and MaxRetryBudgetWindow bound
	// RetryBudget.Window: under a second the count is noise, over a minute
	// the budget answers too slowly to an outage.
	MinRetryBudgetWindow = time.Second
	MaxRetryBudgetWindow = time.Minute
)

// policy checks the traffic-policy fields of an HTTP route's middleware.
func (v *validator) policy(where string, m Middleware) {
	if m.RequestTimeout != 0 {
		v.duration(where, "requestTimeout", m.RequestTimeout, 1, MaxPolicyDuration)
	}
	if m.MaxRequests < 0 {
		v.addf(where, "maxRequests %d is negative", m.MaxRequests)
	}
	if b := m.RetryBudget; b != nil {
		if b.Percent < 0 || b.Percent > 100 {
			v.addf(where, "retryBudget percent %d is out of range 0-100", b.Percent)
		}
		if b.MinPerSecond < 0 {
			v.addf(where, "retryBudget minPerSecond %d is negative", b.MinPerSecond)
		}
		v.duration(where, "retryBudget window", b.Window, MinRetryBudgetWindow, MaxRetryBudgetWindow)
	}
	if o := m.Outlier; o != nil {
		if o.ConsecutiveErrors < 1 || o.ConsecutiveErrors > MaxOutlierErrors {
			v.addf(where, "outlier consecutiveErrors %d is out of range 1-%d", o.ConsecutiveErrors, MaxOutlierErrors)
		}
		v.duration(where, "outlier baseEjectionTime", o.BaseEjectionTime, time.Millisecond, MaxPolicyDuration)
		v.duration(where, "outlier maxEjectionTime", o.MaxEjectionTime, time.Millisecond, MaxPolicyDuration)
		if o.MaxEjectionTime < o.BaseEjectionTime {
			v.addf(where, "outlier maxEjectionTime %s is shorter than baseEjectionTime %s", o.MaxEjectionTime, o.BaseEjectionTime)
		}
		if o.MaxEjectionPercent < 1 || o.MaxEjectionPercent > 100 {
			v.addf(where, "outlier maxEjectionPercent %d is out of range 1-100", o.MaxEjectionPercent)
		}
	}
	v.locality(where, m.Locality)
	if f := m.Faults; f != nil {
		if f.AbortPercent < 0 || f.AbortPercent > 100 || f.AbortPercent != f.AbortPercent {
			v.addf(where, "faults abortPercent %v is out of range 0-100", f.AbortPercent)
		}
		if f.AbortPercent > 0 && (f.AbortStatus < 200 || f.AbortStatus > 599) {
			v.addf(where, "faults abortStatus %d is out of range 200-599", f.AbortStatus)
		}
		if f.DelayPercent < 0 || f.DelayPercent > 100 || f.DelayPercent != f.DelayPercent {
			v.addf(where, "faults delayPercent %v is out of range 0-100", f.DelayPercent)
		}
		if f.DelayPercent > 0 {
			v.duration(where, "faults delay", f.Delay, 1, MaxPolicyDuration)
		}
	}
}

// streamPolicy checks the traffic-policy fields of a TCP or UDP route.
func (v *validator) streamPolicy(where string, r StreamRoute) {
	if r.IdleTimeout != 0 {
		v.duration(where, "idleTimeout", r.IdleTimeout, 1, MaxPolicyDuration)
	}
	if r.MaxConnections < 0 {
		v.addf(where, "maxConnections %d is negative", r.MaxConnections)
	}
	v.locality(where, r.Locality)
}

func (v *validator) locality(where string, l *Locality) {
	if l == nil {
		return
	}
	switch l.Prefer {
	case LocalityNode, LocalityZone:
	default:
		v.addf(where, "locality prefer %q: want node or zone", l.Prefer)
	}
	if l.MaxInFlight < 0 {
		v.addf(where, "locality maxInFlight %d is negative", l.MaxInFlight)
	}
}

// duration checks that d lies in [lo, hi].
func (v *validator) duration(where, field string, d Duration, lo, hi time.Duration) {
	if d.D() < lo || d.D() > hi {
		v.addf(where, "%s %s is out of range %s-%s", field, d, lo, hi)
	}
}

// nodes checks that node names are set and unique and zones are set.
func (v *validator) nodes(nodes []Node) {
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		where := "node " + n.Name
		if n.Name == "" {
			v.addf("node", "empty name")
			continue
		}
		if seen[n.Name] {
			v.addf(where, "listed twice")
		}
		seen[n.Name] = true
		if n.Zone == "" {
			v.addf(where, "empty zone (leave a node without zone out)")
		}
	}
}
