package dns

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
)

// StubDomainsAnnotation, on kube-dns's ConfigMap, lists the stubDomains keys
// nodemesh added (comma-separated), so that restore removes those and only
// those, and a user's own entry for the same domain is never overwritten.
const StubDomainsAnnotation = "nodemesh.io/dns-stub-domains"

// PatchStubDomains returns kube-dns's stubDomains JSON with each domain
// pointing at ip, and the keys nodemesh now owns. owned are the keys it
// owned before (from StubDomainsAnnotation): an entry it owns but no longer
// wants (an alias turned off) is removed. An entry for one of the domains
// that nodemesh does not own is an error, unless it already points at ip
// only. current is returned byte for byte when nothing changes.
func PatchStubDomains(current string, domains []string, ip string, owned []string) (string, []string, error) {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return "", nil, fmt.Errorf("kube-dns stub IP %q: not an IP address", ip)
	}
	stubs, err := parseStubDomains(current)
	if err != nil {
		return "", nil, err
	}
	before := copyStubs(stubs)
	isOwned := toSet(owned)
	want := toSet(domains)
	var nowOwned []string
	for _, d := range domains {
		cur, exists := stubs[d]
		if exists && !isOwned[d] {
			if reflect.DeepEqual(cur, []string{addr.String()}) {
				continue // the user's own entry already says the same
			}
			return "", nil, fmt.Errorf("kube-dns stubDomains already has an entry for %q (%s) that nodemesh did not add; remove it or pick another domain", d, strings.Join(cur, ","))
		}
		stubs[d] = []string{addr.String()}
		nowOwned = append(nowOwned, d)
	}
	for d := range isOwned {
		if !want[d] {
			delete(stubs, d)
		}
	}
	sort.Strings(nowOwned)
	if reflect.DeepEqual(stubs, before) {
		return current, nowOwned, nil
	}
	return encodeStubs(stubs), nowOwned, nil
}

// RestoreStubDomains removes the owned entries. It returns "" when no entry
// is left, and current byte for byte when nothing changes.
func RestoreStubDomains(current string, owned []string) (string, error) {
	stubs, err := parseStubDomains(current)
	if err != nil {
		return "", err
	}
	changed := false
	for _, d := range owned {
		if _, ok := stubs[d]; ok {
			delete(stubs, d)
			changed = true
		}
	}
	if !changed {
		return current, nil
	}
	if len(stubs) == 0 {
		return "", nil
	}
	return encodeStubs(stubs), nil
}

func parseStubDomains(s string) (map[string][]string, error) {
	stubs := map[string][]string{}
	if strings.TrimSpace(s) == "" {
		return stubs, nil
	}
	if err := json.Unmarshal([]byte(s), &stubs); err != nil {
		return nil, fmt.Errorf("%w: kube-dns stubDomains is not a JSON object of string lists: %v", ErrUnparseable, err)
	}
	if stubs == nil { // the JSON was null
		stubs = map[string][]string{}
	}
	return stubs, nil
}

// encodeStubs writes the map with sorted keys (encoding/json sorts them).
func encodeStubs(stubs map[string][]string) string {
	b, _ := json.Marshal(stubs) // a map of string slices always encodes
	return string(b)
}

func copyStubs(in map[string][]string) map[string][]string {
	out := make(map[string][]string, len(in))
	for k, v := range in {
		out[k] = slices.Clone(v)
	}
	return out
}

func toSet(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		if x != "" {
			m[x] = true
		}
	}
	return m
}

// splitOwned reads StubDomainsAnnotation.
func splitOwned(annotation string) []string {
	var out []string
	for _, d := range strings.Split(annotation, ",") {
		if d = strings.TrimSpace(d); d != "" {
			out = append(out, d)
		}
	}
	return out
}
