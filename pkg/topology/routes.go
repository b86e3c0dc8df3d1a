package topology

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/nodemesh/nodemesh/pkg/httpmatch"
	"github.com/nodemesh/nodemesh/pkg/table"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
)

// buildHTTPRouteGroups normalises every HTTPRouteGroup. A match whose regex
// does not compile is dropped with an error (the proxy applies a table
// all-or-nothing, so one bad regex must not reach it); dropping a match
// only ever sends fewer requests to a split and allows fewer under ACL.
func (b *builder) buildHTTPRouteGroups() []*HTTPRouteGroup {
	src := sortedBy(b.snap.HTTPRouteGroups, func(g *specsv1alpha4.HTTPRouteGroup) (string, string) { return g.Namespace, g.Name })
	out := make([]*HTTPRouteGroup, 0, len(src))
	for _, g := range src {
		hg := &HTTPRouteGroup{Namespace: g.Namespace, Name: g.Name, Matches: []HTTPMatch{}}
		seen := map[string]bool{}
		for i, m := range g.Spec.Matches {
			name := m.Name
			if name == "" {
				name = fmt.Sprintf("#%d", i)
			}
			if seen[name] {
				b.errs.add(KindHTTPRouteGroup, g.Namespace, g.Name, "match %q: name used twice; the later one is ignored", name)
				continue
			}
			seen[name] = true
			match, err := httpMatch(m)
			if err != nil {
				b.errs.add(KindHTTPRouteGroup, g.Namespace, g.Name, "match %q: %v; match ignored", name, err)
				continue
			}
			hg.Matches = append(hg.Matches, HTTPMatch{Name: name, Match: match})
		}
		out = append(out, hg)
	}
	return out
}

// httpMatch validates and normalises one SMI match: the path regex anchored
// at the start, every alternative of it (httpmatch.Anchor), "*" among methods meaning any (empty), header regexes
// compiled and sorted by header name.
func httpMatch(m specsv1alpha4.HTTPMatch) (table.HTTPMatch, error) {
	var out table.HTTPMatch
	if m.PathRegex != "" {
		path, err := httpmatch.Anchor(m.PathRegex) // refuses what regexp.Compile refuses
		if err != nil {
			return out, fmt.Errorf("pathRegex %q: %v", m.PathRegex, err)
		}
		out.PathRegex = path
	}
	for _, method := range m.Methods {
		method = strings.ToUpper(strings.TrimSpace(method))
		if method == string(specsv1alpha4.HTTPRouteMethodAll) {
			out.Methods = nil
			break
		}
		if method == "" || strings.ContainsAny(method, " \t/") {
			return out, fmt.Errorf("method %q is not a method name", method)
		}
		out.Methods = append(out.Methods, method)
	}
	slices.Sort(out.Methods)
	out.Methods = slices.Compact(out.Methods)
	for name, re := range m.Headers {
		if name == "" {
			return out, fmt.Errorf("header with an empty name")
		}
		if _, err := regexp.Compile(re); err != nil {
			return out, fmt.Errorf("header %q regex %q: %v", name, re, err)
		}
		out.Headers = append(out.Headers, table.HeaderMatch{Name: name, Regex: re})
	}
	slices.SortFunc(out.Headers, func(a, b table.HeaderMatch) int {
		return cmp.Or(cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), cmp.Compare(a.Name, b.Name))
	})
	return out, nil
}

// buildStreamRoutes normalises every TCPRoute or UDPRoute. A port outside
// 1-65535 is dropped with an error.
func (b *builder) buildStreamRoutes(kind string) []*StreamRoute {
	type route struct {
		ns, name, match string
		ports           []int
	}
	var src []route
	if kind == KindTCPRoute {
		for _, r := range b.snap.TCPRoutes {
			src = append(src, route{r.Namespace, r.Name, r.Spec.Matches.Name, r.Spec.Matches.Ports})
		}
	} else {
		for _, r := range b.snap.UDPRoutes {
			src = append(src, route{r.Namespace, r.Name, r.Spec.Matches.Name, r.Spec.Matches.Ports})
		}
	}
	src = sortedBy(src, func(r route) (string, string) { return r.ns, r.name })
	out := make([]*StreamRoute, 0, len(src))
	for _, r := range src {
		sr := &StreamRoute{Namespace: r.ns, Name: r.name, MatchName: r.match, AllPorts: len(r.ports) == 0}
		for _, p := range r.ports {
			if p < 1 || p > 65535 {
				b.errs.add(kind, r.ns, r.name, "port %d is not a port number; ignored", p)
				continue
			}
			sr.Ports = append(sr.Ports, int32(p))
		}
		if len(r.ports) > 0 && len(sr.Ports) == 0 {
			// Every listed port was bad; AllPorts stays false, since selecting
			// every port instead would widen what the route allows.
			b.errs.add(kind, r.ns, r.name, "no valid port left; the route selects nothing")
		}
		slices.Sort(sr.Ports)
		sr.Ports = slices.Compact(sr.Ports)
		out = append(out, sr)
	}
	return out
}
