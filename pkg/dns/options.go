package dns

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/nodemesh/nodemesh/pkg/shadow"
)

// Defaults of Options. They match the controller's flags.
const (
	DefaultMeshNamespace = "nodemesh"
	DefaultDomain        = "mesh"
	DefaultClusterDomain = "cluster.local"
	// DefaultDNSPort is the port CoreDNS serves on when a server block key
	// names none and the Deployment does not pass -dns.port.
	DefaultDNSPort = 53
)

// KnownAliases are the domains users of Traefik Mesh resolve; the controller
// serves them as aliases of the mesh domain when --aliases is set.
var KnownAliases = []string{"traefik.mesh", "maesh"}

// Options says what the DNS patch adds. The zero value of every field means
// its default.
type Options struct {
	// MeshNamespace holds the shadow services. Default "nodemesh".
	MeshNamespace string
	// Domain is the mesh domain: "name.namespace.<Domain>" resolves to the
	// shadow service. Default "mesh".
	Domain string
	// Aliases are more domains served the same way, such as "traefik.mesh"
	// and "maesh". Default none.
	Aliases []string
	// ClusterDomain is the cluster's DNS domain. Default "cluster.local".
	ClusterDomain string
	// ExactRules map the services whose shadow name is not
	// "<name>--<namespace>" (see ExactRule). Order does not matter.
	ExactRules []ExactRule
	// Listener says where CoreDNS serves the cluster domain. When nil it is
	// read from the Corefile being patched (see FindListener); the patcher
	// sets it when the blocks go into another file (AKS coredns-custom).
	Listener *Listener
	// DefaultPort is the port of server blocks that name none (CoreDNS's
	// -dns.port). Default 53.
	DefaultPort int
}

// ExactRule maps one service to its shadow service by name. The generic
// rewrite handles every shadow named "<name>--<namespace>" whose namespace
// holds no "--"; every other service (hashed shadow names, and names the
// generic answer rewrite would split at the wrong "--") needs one, or its
// mesh name does not resolve. RulesForShadows builds the list from the
// shadow services' labels.
type ExactRule struct {
	// Service is the user's service: it answers as
	// "<name>.<namespace>.<domain>".
	Service types.NamespacedName
	// Shadow is the name of its shadow service in the mesh namespace.
	Shadow string
}

// withDefaults returns o with defaults filled in, aliases cleaned and rules
// sorted, or an error naming the first invalid field.
func (o Options) withDefaults() (Options, error) {
	if o.MeshNamespace == "" {
		o.MeshNamespace = DefaultMeshNamespace
	}
	if o.Domain == "" {
		o.Domain = DefaultDomain
	}
	if o.ClusterDomain == "" {
		o.ClusterDomain = DefaultClusterDomain
	}
	if o.DefaultPort == 0 {
		o.DefaultPort = DefaultDNSPort
	}
	o.Domain = strings.ToLower(strings.TrimSuffix(o.Domain, "."))
	o.ClusterDomain = strings.ToLower(strings.TrimSuffix(o.ClusterDomain, "."))
	if errs := validation.IsDNS1123Label(o.MeshNamespace); len(errs) > 0 {
		return o, fmt.Errorf("mesh namespace %q: %s", o.MeshNamespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(o.ClusterDomain); len(errs) > 0 {
		return o, fmt.Errorf("cluster domain %q: %s", o.ClusterDomain, strings.Join(errs, "; "))
	}
	if o.DefaultPort < 1 || o.DefaultPort > 65535 {
		return o, fmt.Errorf("default port %d: not a port number", o.DefaultPort)
	}
	seen := map[string]bool{}
	var aliases []string
	for i, d := range append([]string{o.Domain}, o.Aliases...) {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if d == "" && i > 0 {
			continue // "--aliases=" gives one empty element
		}
		if errs := validation.IsDNS1123Subdomain(d); len(errs) > 0 {
			return o, fmt.Errorf("domain %q: %s", d, strings.Join(errs, "; "))
		}
		if d == o.ClusterDomain || strings.HasSuffix(d, "."+o.ClusterDomain) || strings.HasSuffix(o.ClusterDomain, "."+d) {
			return o, fmt.Errorf("domain %q overlaps the cluster domain %q", d, o.ClusterDomain)
		}
		if i > 0 && !seen[d] {
			aliases = append(aliases, d)
		}
		seen[d] = true
	}
	o.Aliases = aliases
	rules, err := cleanRules(o.ExactRules)
	if err != nil {
		return o, err
	}
	o.ExactRules = rules
	return o, nil
}

// domains returns the mesh domain followed by the aliases.
func (o Options) domains() []string { return append([]string{o.Domain}, o.Aliases...) }

// ValidateRule reports why r cannot be written into a Corefile, or nil.
func ValidateRule(r ExactRule) error {
	for _, f := range [][2]string{{"name", r.Service.Name}, {"namespace", r.Service.Namespace}, {"shadow name", r.Shadow}} {
		what, v := f[0], f[1]
		if errs := validation.IsDNS1123Label(v); len(errs) > 0 {
			return fmt.Errorf("exact rule for %s: %s %q: %s", r.Service, what, v, strings.Join(errs, "; "))
		}
	}
	return nil
}

// cleanRules validates, de-duplicates and sorts rules by namespace and
// name. Two rules for one service with different shadows are an error.
func cleanRules(rules []ExactRule) ([]ExactRule, error) {
	byService := map[types.NamespacedName]string{}
	var out []ExactRule
	for _, r := range rules {
		if err := ValidateRule(r); err != nil {
			return nil, err
		}
		if prev, ok := byService[r.Service]; ok {
			if prev != r.Shadow {
				return nil, fmt.Errorf("exact rules for %s name two shadows, %q and %q", r.Service, prev, r.Shadow)
			}
			continue
		}
		byService[r.Service] = r.Shadow
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Service, out[j].Service
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return out, nil
}

// NeedsExactRule reports whether the service needs an ExactRule: its shadow
// is not named "<name>--<namespace>", or the generic answer rewrite, which
// splits the shadow name at its last "--", would split it wrongly because
// the namespace holds "--".
// The predicate lives in pkg/shadow, so that the topology's DNS rewrites
// (which must not depend on this client package) agree with the patcher.
func NeedsExactRule(svc types.NamespacedName, shadowName string) bool {
	return shadow.NeedsExactDNSRule(svc, shadowName)
}
