package shadow

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// MaxNameLength is the longest Service name Kubernetes accepts (a DNS-1035
// label). Traefik Mesh's `<meshns>-<name>-6d61657368-<ns>` went over it (#746).
const MaxNameLength = 63

// hashLength is the number of hex digits of sha256("ns/name") in a hashed name.
const hashLength = 10

// PlainName is the readable shadow name "<name>--<namespace>". It is what the
// DNS rewrite rule `([^.]+)\.([^.]+)\.<domain>` -> `{1}--{2}` produces, so a
// service whose shadow has its plain name needs no exact DNS rule.
func PlainName(source types.NamespacedName) string {
	return source.Name + "--" + source.Namespace
}

// HashedName is "<first chars of the plain name>-<10 hex of
// sha256(namespace/name)>", at most 63 characters.
func HashedName(source types.NamespacedName) string {
	return hashedName(source, "")
}

func hashedName(source types.NamespacedName, salt string) string {
	sum := sha256.Sum256([]byte(source.Namespace + "/" + source.Name + salt))
	suffix := hex.EncodeToString(sum[:])[:hashLength]
	prefix := PlainName(source)
	if max := MaxNameLength - hashLength - 1; len(prefix) > max {
		prefix = prefix[:max]
	}
	// A trailing '-' would give "--" before the hash; trim it to keep the
	// name readable (a DNS label may not end in '-' anyway, the hash follows).
	prefix = strings.TrimRight(prefix, "-")
	return prefix + "-" + suffix
}

// Names assigns a shadow name to every source, deterministically:
//   - the plain name when it fits in 63 characters and no other source's plain
//     name is the same (on a tie the first source in (namespace, name) order
//     keeps it: "a--b" in "c" and "a" in "b--c" both want "a--b--c");
//   - otherwise the hashed name. If even that is taken (only a crafted name can
//     do it), the hash is salted with "#1", "#2", ... until it is free.
//
// The result depends only on the set of sources, not on their order.
func Names(sources []types.NamespacedName) map[types.NamespacedName]string {
	srcs := slices.Clone(sources)
	slices.SortFunc(srcs, compareNN)
	srcs = slices.Compact(srcs)

	names := make(map[types.NamespacedName]string, len(srcs))
	taken := make(map[string]bool, len(srcs))
	var rest []types.NamespacedName
	for _, s := range srcs {
		plain := PlainName(s)
		if len(plain) <= MaxNameLength && !taken[plain] {
			names[s] = plain
			taken[plain] = true
			continue
		}
		rest = append(rest, s)
	}
	for _, s := range rest {
		name := HashedName(s)
		for i := 1; taken[name]; i++ {
			name = hashedName(s, "#"+strconv.Itoa(i))
		}
		names[s] = name
		taken[name] = true
	}
	return names
}

// IsPlain reports whether name is source's plain (regex-rewritable) name.
func IsPlain(source types.NamespacedName, name string) bool {
	return name == PlainName(source)
}

// NeedsExactDNSRule reports whether the mesh name of source, whose shadow is
// called name, needs its own DNS rewrite rule: the generic rules get it
// wrong when the shadow name is not the plain one, or when the namespace
// holds "--", since the generic answer rewrite splits the shadow name at
// its last "--" ("api--team--a" would answer as "api--team.a"). The DNS
// patcher and the topology's DNS rewrites both use it.
func NeedsExactDNSRule(source types.NamespacedName, name string) bool {
	return !IsPlain(source, name) || strings.Contains(source.Namespace, "--")
}

func compareNN(a, b types.NamespacedName) int {
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}
