package controller

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// namespaceFilter decides which namespaces' user objects are meshed.
type namespaceFilter struct {
	watch  []string // empty means every namespace
	ignore []string // always holds AlwaysIgnored and the mesh namespace
}

func newNamespaceFilter(c Config) namespaceFilter {
	f := namespaceFilter{watch: slices.Clone(c.WatchNamespaces)}
	f.ignore = append(append(slices.Clone(c.IgnoreNamespaces), AlwaysIgnored...), c.MeshNamespace)
	f.watch = slices.DeleteFunc(f.watch, func(ns string) bool { return ns == "" })
	slices.Sort(f.watch)
	f.watch = slices.Compact(f.watch)
	return f
}

// allows reports whether objects in namespace ns are meshed.
func (f namespaceFilter) allows(ns string) bool {
	if slices.Contains(f.ignore, ns) {
		return false
	}
	return len(f.watch) == 0 || slices.Contains(f.watch, ns)
}

// informerNamespaces lists the namespaces to run informers in: "" (all) when
// no watch list is set, else each watched namespace that is not ignored.
func (f namespaceFilter) informerNamespaces() []string {
	if len(f.watch) == 0 {
		return []string{""}
	}
	var out []string
	for _, ns := range f.watch {
		if f.allows(ns) {
			out = append(out, ns)
		}
	}
	return out
}

// listOptions returns the list and watch options of the user-object informers
// in namespace ns. A cluster-wide informer ("") asks the apiserver to leave
// out the ignored namespaces, so their objects are neither sent, decoded nor
// cached: the mesh namespace alone holds a shadow Service, and an
// EndpointSlice of it, for every meshed Service.
func (f namespaceFilter) listOptions(ns string) func(*metav1.ListOptions) {
	if ns != "" {
		return func(*metav1.ListOptions) {}
	}
	ignored := slices.Clone(f.ignore)
	slices.Sort(ignored)
	ignored = slices.Compact(ignored)
	terms := make([]fields.Selector, 0, len(ignored))
	for _, n := range ignored {
		terms = append(terms, fields.OneTermNotEqualSelector("metadata.namespace", n))
	}
	selector := fields.AndSelectors(terms...).String()
	return func(o *metav1.ListOptions) { o.FieldSelector = selector }
}
