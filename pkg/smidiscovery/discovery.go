// Package smidiscovery decides, once at controller start, which SMI API
// versions the apiserver serves, so the controller starts informers only for
// those. A cluster without the SMI CRDs is a normal case: the mesh then runs
// without TrafficSplit, routes and access control, and says so once.
package smidiscovery

import (
	"fmt"
	"slices"
	"strings"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/discovery"

	"github.com/nodemesh/nodemesh/pkg/snapshot"
)

// SplitVersions are the TrafficSplit versions read, most preferred first.
// Older versions are converted to v1alpha4 by the controller.
var SplitVersions = []string{"v1alpha4", "v1alpha3", "v1alpha2"}

// SpecsVersions are the HTTPRouteGroup/TCPRoute/UDPRoute versions read.
var SpecsVersions = []string{"v1alpha4"}

// AccessVersions are the TrafficTarget versions read, most preferred first.
// v1alpha2 comes first although older: smi-sdk-go's v1alpha2 type is the
// one that carries spec.destination.port (SMI dropped it in v1alpha3), and
// nodemesh's CRD serves both versions with the same schema, port included,
// so v1alpha2 reads lose nothing. The controller converts to v1alpha3.
var AccessVersions = []string{"v1alpha2", "v1alpha3"}

// API group names of SMI.
var (
	SplitGroup  = splitv1alpha4.SchemeGroupVersion.Group
	SpecsGroup  = specsv1alpha4.SchemeGroupVersion.Group
	AccessGroup = accessv1alpha3.SchemeGroupVersion.Group
)

// Result is what discovery found.
type Result struct {
	// Status holds the chosen version per group ("" when off).
	Status snapshot.SMIStatus `json:"status"`
	// HTTPRouteGroups, TCPRoutes and UDPRoutes say which specs kinds the
	// chosen specs version serves (a CRD set may install only some).
	HTTPRouteGroups bool `json:"httpRouteGroups"`
	TCPRoutes       bool `json:"tcpRoutes"`
	UDPRoutes       bool `json:"udpRoutes"`
	// Missing lists, one phrase each, what was looked for and not found,
	// sorted. Empty when every group is served.
	Missing []string `json:"missing,omitempty"`
}

// Enabled reports whether any SMI feature is on.
func (r Result) Enabled() bool {
	return r.Status.Split != "" || r.Status.Specs != "" || r.Status.Access != ""
}

// Summary is the one log line that describes r.
func (r Result) Summary() string {
	on := func(v string) string {
		if v == "" {
			return "off"
		}
		return v
	}
	s := fmt.Sprintf("SMI: split %s, specs %s, access %s", on(r.Status.Split), on(r.Status.Specs), on(r.Status.Access))
	if len(r.Missing) > 0 {
		s += " (not served: " + strings.Join(r.Missing, "; ") + ")"
	}
	return s
}

// Discover asks the apiserver which SMI groups, versions and kinds it
// serves. A group or version that is not served is simply off; only an error
// that is not "not found" (the apiserver unreachable, say) is returned, so
// the caller may retry.
func Discover(client discovery.DiscoveryInterface) (Result, error) {
	var r Result
	var err error
	if r.Status.Split, err = pick(client, SplitGroup, SplitVersions, "trafficsplits", &r.Missing); err != nil {
		return Result{}, err
	}
	kinds, version, err := pickSpecs(client, &r.Missing)
	if err != nil {
		return Result{}, err
	}
	r.Status.Specs = version
	r.HTTPRouteGroups, r.TCPRoutes, r.UDPRoutes = kinds["httproutegroups"], kinds["tcproutes"], kinds["udproutes"]
	if r.Status.Access, err = pick(client, AccessGroup, AccessVersions, "traffictargets", &r.Missing); err != nil {
		return Result{}, err
	}
	slices.Sort(r.Missing)
	return r, nil
}

// pick returns the first version of group (in preference order) that serves
// resource, or "" after noting it in missing.
func pick(client discovery.DiscoveryInterface, group string, versions []string, resource string, missing *[]string) (string, error) {
	for _, v := range versions {
		names, err := resources(client, group+"/"+v)
		if err != nil {
			return "", err
		}
		if names[resource] {
			return v, nil
		}
	}
	*missing = append(*missing, fmt.Sprintf("%s %s (%s)", resource, group, strings.Join(versions, ", ")))
	return "", nil
}

// pickSpecs picks the first specs version serving any of the three route
// kinds and reports which it serves.
func pickSpecs(client discovery.DiscoveryInterface, missing *[]string) (map[string]bool, string, error) {
	for _, v := range SpecsVersions {
		names, err := resources(client, SpecsGroup+"/"+v)
		if err != nil {
			return nil, "", err
		}
		if names["httproutegroups"] || names["tcproutes"] || names["udproutes"] {
			for _, k := range []string{"httproutegroups", "tcproutes", "udproutes"} {
				if !names[k] {
					*missing = append(*missing, fmt.Sprintf("%s %s/%s", k, SpecsGroup, v))
				}
			}
			return names, v, nil
		}
	}
	*missing = append(*missing, fmt.Sprintf("routes %s (%s)", SpecsGroup, strings.Join(SpecsVersions, ", ")))
	return map[string]bool{}, "", nil
}

// resources returns the top-level resource names served in groupVersion; an
// unserved group version gives an empty set, not an error.
func resources(client discovery.DiscoveryInterface, groupVersion string) (map[string]bool, error) {
	list, err := client.ServerResourcesForGroupVersion(groupVersion)
	if apierrors.IsNotFound(err) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("discovering %s: %w", groupVersion, err)
	}
	out := map[string]bool{}
	for _, res := range list.APIResources {
		if !strings.Contains(res.Name, "/") { // skip subresources such as status
			out[res.Name] = true
		}
	}
	return out, nil
}
