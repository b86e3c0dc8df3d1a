package controller

import "slices"

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
