package topology

import (
	"cmp"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/types"
)

// ObjectError is a problem with one object. The controller turns each into
// an Event on the object and lists them in the status API; the object's
// other settings, and every other object, still apply.
type ObjectError struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Message   string `json:"message"`
}

// Error renders "Kind ns/name: message".
func (e ObjectError) Error() string {
	return fmt.Sprintf("%s %s/%s: %s", e.Kind, e.Namespace, e.Name, e.Message)
}

// Compare orders errors by kind, namespace, name, then message.
func (e ObjectError) Compare(o ObjectError) int {
	return cmp.Or(cmp.Compare(e.Kind, o.Kind), cmp.Compare(e.Namespace, o.Namespace),
		cmp.Compare(e.Name, o.Name), cmp.Compare(e.Message, o.Message))
}

// ErrorsFor returns the errors about one object, in order.
func (t *Topology) ErrorsFor(kind, namespace, name string) []ObjectError {
	var out []ObjectError
	for _, e := range t.Errors {
		if e.Kind == kind && e.Namespace == namespace && e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// errorList collects errors during a build.
type errorList []ObjectError

func (l *errorList) add(kind, namespace, name, format string, args ...any) {
	*l = append(*l, ObjectError{Kind: kind, Namespace: namespace, Name: name, Message: fmt.Sprintf(format, args...)})
}

func (l errorList) sorted() []ObjectError {
	out := slices.Clone([]ObjectError(l))
	slices.SortFunc(out, ObjectError.Compare)
	return slices.Compact(out)
}

// index gives the builders and pkg/routing O(1) lookups. It is rebuilt from
// the exported slices, so a Topology decoded from JSON works too.
type index struct {
	services map[types.NamespacedName]*Service
	splits   map[types.NamespacedName]*Split
	groups   map[types.NamespacedName]*HTTPRouteGroup
	tcp      map[types.NamespacedName]*StreamRoute
	udp      map[types.NamespacedName]*StreamRoute
}

func (t *Topology) index() *index {
	if t.idx != nil {
		return t.idx
	}
	services := make(map[types.NamespacedName]*Service, len(t.Services))
	for _, s := range t.Services {
		services[nn(s.Namespace, s.Name)] = s
	}
	t.idx = t.indexWith(services)
	return t.idx
}

// reindex makes lookups see the current lists after a build step added
// some. The services' lookup is kept: Build sets the services first and
// never changes that list afterwards, and it is the largest map by far.
func (t *Topology) reindex() {
	if t.idx == nil {
		return
	}
	t.idx = t.indexWith(t.idx.services)
}

// indexWith indexes every list but the services, whose lookup is given.
func (t *Topology) indexWith(services map[types.NamespacedName]*Service) *index {
	x := &index{
		services: services,
		splits:   make(map[types.NamespacedName]*Split, len(t.Splits)),
		groups:   make(map[types.NamespacedName]*HTTPRouteGroup, len(t.HTTPRouteGroups)),
		tcp:      make(map[types.NamespacedName]*StreamRoute, len(t.TCPRoutes)),
		udp:      make(map[types.NamespacedName]*StreamRoute, len(t.UDPRoutes)),
	}
	for _, s := range t.Splits {
		x.splits[nn(s.Namespace, s.Name)] = s
	}
	for _, g := range t.HTTPRouteGroups {
		x.groups[nn(g.Namespace, g.Name)] = g
	}
	for _, r := range t.TCPRoutes {
		x.tcp[nn(r.Namespace, r.Name)] = r
	}
	for _, r := range t.UDPRoutes {
		x.udp[nn(r.Namespace, r.Name)] = r
	}
	return x
}

// Service returns the mesh service namespace/name, or nil. Like every lookup
// method it builds an index on first use, so it is not safe to call
// concurrently on a Topology that was not made by Build.
func (t *Topology) Service(namespace, name string) *Service {
	return t.index().services[nn(namespace, name)]
}

// Split returns the TrafficSplit namespace/name, or nil.
func (t *Topology) Split(namespace, name string) *Split {
	return t.index().splits[nn(namespace, name)]
}

// HTTPRouteGroup returns the route group namespace/name, or nil.
func (t *Topology) HTTPRouteGroup(namespace, name string) *HTTPRouteGroup {
	return t.index().groups[nn(namespace, name)]
}

// TCPRoute returns the TCPRoute namespace/name, or nil.
func (t *Topology) TCPRoute(namespace, name string) *StreamRoute {
	return t.index().tcp[nn(namespace, name)]
}

// UDPRoute returns the UDPRoute namespace/name, or nil.
func (t *Topology) UDPRoute(namespace, name string) *StreamRoute {
	return t.index().udp[nn(namespace, name)]
}

func nn(namespace, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: namespace, Name: name}
}
