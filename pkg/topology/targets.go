package topology

import (
	"cmp"
	"slices"

	"github.com/nodemesh/nodemesh/pkg/table"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
)

// buildTrafficTargets normalises every TrafficTarget (access v1alpha3):
//   - the destination must be a ServiceAccount, else the target is inactive
//     (it allows nothing) with an error;
//   - an omitted destination or source namespace is the target's own;
//   - sources that are not ServiceAccounts are dropped with an error;
//   - a rule naming a missing route, an unknown kind, or a missing match of
//     an HTTPRouteGroup is dropped (or loses that match) with an error. Every
//     such repair allows less, never more.
func (b *builder) buildTrafficTargets(t *Topology) []*TrafficTarget {
	src := sortedBy(b.snap.TrafficTargets, func(tt *accessv1alpha3.TrafficTarget) (string, string) { return tt.Namespace, tt.Name })
	out := make([]*TrafficTarget, 0, len(src))
	for _, tt := range src {
		bad := func(format string, args ...any) {
			b.errs.add(KindTrafficTarget, tt.Namespace, tt.Name, format, args...)
		}
		d := tt.Spec.Destination
		tg := &TrafficTarget{
			Namespace:   tt.Namespace,
			Name:        tt.Name,
			Destination: table.Identity{Namespace: cmp.Or(d.Namespace, tt.Namespace), ServiceAccount: d.Name},
			Sources:     []table.Identity{},
			Rules:       []TargetRule{},
			Active:      true,
		}
		if d.Kind != KindServiceAccount || d.Name == "" {
			bad("destination %s %q: want a named ServiceAccount; the target allows nothing", d.Kind, d.Name)
			tg.Active = false
		}
		if p := b.snap.TrafficTargetPorts[nn(tt.Namespace, tt.Name)]; p != 0 {
			if p < 1 || p > 65535 {
				bad("destination port %d is not a port number; the target allows nothing", p)
				tg.Active = false
			}
			tg.Port = p
		}
		for _, s := range tt.Spec.Sources {
			if s.Kind != KindServiceAccount || s.Name == "" {
				bad("source %s %q: want a named ServiceAccount; source ignored", s.Kind, s.Name)
				continue
			}
			tg.Sources = append(tg.Sources, table.Identity{Namespace: cmp.Or(s.Namespace, tt.Namespace), ServiceAccount: s.Name})
		}
		slices.SortFunc(tg.Sources, compareIdentity)
		tg.Sources = slices.Compact(tg.Sources)
		for _, r := range tt.Spec.Rules {
			if rule, ok := b.targetRule(t, tt, r); ok {
				tg.Rules = append(tg.Rules, rule)
			}
		}
		out = append(out, tg)
	}
	return out
}

// targetRule checks one rule; the route it names is in the target's
// namespace (the SMI spec has rules reference routes by name only).
func (b *builder) targetRule(t *Topology, tt *accessv1alpha3.TrafficTarget, r accessv1alpha3.TrafficTargetRule) (TargetRule, bool) {
	bad := func(format string, args ...any) {
		b.errs.add(KindTrafficTarget, tt.Namespace, tt.Name, format, args...)
	}
	rule := TargetRule{Kind: r.Kind, Name: r.Name}
	switch r.Kind {
	case KindHTTPRouteGroup:
		g := t.HTTPRouteGroup(tt.Namespace, r.Name)
		if g == nil {
			bad("rule HTTPRouteGroup %q does not exist; rule ignored", r.Name)
			return rule, false
		}
		for _, m := range r.Matches {
			if g.Match(m) == nil {
				bad("rule HTTPRouteGroup %q has no valid match %q; that match is not allowed", r.Name, m)
				continue
			}
			rule.Matches = append(rule.Matches, m)
		}
		if len(r.Matches) > 0 && len(rule.Matches) == 0 {
			// Naming only missing matches must not widen to "all matches".
			return rule, false
		}
		slices.Sort(rule.Matches)
		rule.Matches = slices.Compact(rule.Matches)
	case KindTCPRoute, KindUDPRoute:
		found := t.TCPRoute(tt.Namespace, r.Name) != nil
		if r.Kind == KindUDPRoute {
			found = t.UDPRoute(tt.Namespace, r.Name) != nil
		}
		if !found {
			bad("rule %s %q does not exist; rule ignored", r.Kind, r.Name)
			return rule, false
		}
	default:
		bad("rule kind %q is not supported (want HTTPRouteGroup, TCPRoute or UDPRoute); rule ignored", r.Kind)
		return rule, false
	}
	return rule, true
}

func compareIdentity(a, b table.Identity) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.ServiceAccount, b.ServiceAccount))
}
