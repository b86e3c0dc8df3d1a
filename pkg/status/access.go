package status

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nodemesh/nodemesh/pkg/table"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

// accessOf lists the table's Allow rules of svc's routes, one line per
// rule: "port 80/http: shop/client may GET ^/api".
func accessOf(t *table.Table, svc *topology.Service) Access {
	if t == nil {
		return Access{Rules: []string{}}
	}
	a := Access{Enforced: t.ACL, Rules: []string{}}
	ref := svc.Ref()
	for _, r := range t.HTTP {
		if r.Service != ref {
			continue
		}
		for _, allow := range r.Allow {
			a.Rules = append(a.Rules, fmt.Sprintf("port %d/http: %s may %s", r.Port, identities(allow.Sources), matches(allow.Matches)))
		}
	}
	for proto, routes := range map[string][]table.StreamRoute{"tcp": t.TCP, "udp": t.UDP} {
		for _, r := range routes {
			if r.Service != ref {
				continue
			}
			for _, allow := range r.Allow {
				a.Rules = append(a.Rules, fmt.Sprintf("port %d/%s: %s may connect", r.Port, proto, identities(allow.Sources)))
			}
		}
	}
	slices.Sort(a.Rules) // the map above has no order
	return a
}

func identities(ids []table.Identity) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.Namespace + "/" + id.ServiceAccount
	}
	return strings.Join(out, ", ")
}

// matches renders HTTP matches: "GET,POST ^/api" or "any request".
func matches(ms []table.HTTPMatch) string {
	if len(ms) == 0 {
		return "nothing (a TrafficTarget without rules)"
	}
	var out []string
	for _, m := range ms {
		var parts []string
		if len(m.Methods) > 0 && !slices.Contains(m.Methods, "*") {
			parts = append(parts, strings.Join(m.Methods, ","))
		}
		if m.PathRegex != "" {
			parts = append(parts, m.PathRegex)
		}
		for _, h := range m.Headers {
			parts = append(parts, fmt.Sprintf("%s~%s", h.Name, h.Regex))
		}
		if len(parts) == 0 {
			parts = []string{"any request"}
		}
		out = append(out, strings.Join(parts, " "))
	}
	return strings.Join(out, " | ")
}
