// Package portset keeps the listeners of a stream data plane (TCP or UDP):
// one per proxy port, opened and closed as routing tables come and go. The
// TCP and UDP managers differ in what a listener does; how the set follows
// a table is the same, and lives here.
package portset

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/nodemesh/nodemesh/pkg/proxy/pick"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// Listener is one open proxy port serving routes of type R.
type Listener[R any] interface {
	// Swap installs r: on a new listener before Serve runs, and on a serving
	// one when a table gives its port a new route (the listener then also
	// ends what r no longer allows). It is one atomic store for new
	// connections or datagrams.
	Swap(r R)
	// Serve accepts or reads until Close; the Set runs it on a goroutine
	// that Close waits for.
	Serve()
	// Close stops the listener and everything it serves.
	Close()
}

// ErrClosed is returned by Apply after Close.
var ErrClosed = errors.New("manager closed")

// Set is the listeners of one manager, by proxy port. Its methods are safe
// for concurrent use.
type Set[R any, L Listener[R]] struct {
	name   string
	listen func(port int32) (L, error)

	mu        sync.Mutex
	listeners map[int32]L
	closed    bool
	wg        sync.WaitGroup // Serve loops and Go's goroutines

	applyMu sync.Mutex // one ApplyStreams at a time, so applied follows table order
}

// New returns an empty Set. listen opens the listener of one port; name
// ("tcp proxy") starts error messages.
func New[R any, L Listener[R]](name string, listen func(port int32) (L, error)) *Set[R, L] {
	return &Set[R, L]{name: name, listen: listen, listeners: map[int32]L{}}
}

// Apply makes the listeners match routes, keyed by proxy port. It is all or
// nothing: it opens every new listener first; if one fails it closes those
// it just opened and returns an error naming the port (with describe(route),
// the service), leaving the previous state serving. Then it swaps the route
// of every kept listener, starts the new ones and closes those whose port
// left. A listener is opened or closed only when the set of ports changes.
func (s *Set[R, L]) Apply(routes map[int32]R, describe func(R) string) error {
	return s.apply(routes, func(port int32) string { return describe(routes[port]) })
}

// ApplyStreams makes the listeners match a table's stream routes (t.TCP or
// t.UDP): it builds one route per port with Routes, giving build the
// pick.Set of the stream route's backends, and applies them with Apply;
// once they are applied it calls applied (nil: nothing), where a manager
// deletes the edge series the table no longer has a use for. Calls run one
// at a time, so that applied follows table order; build may call Get.
func (s *Set[R, L]) ApplyStreams(streams []table.StreamRoute, build func(sr *table.StreamRoute, set *pick.Set) (R, error), applied func()) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	services := make(map[int32]table.ServiceRef, len(streams))
	routes, err := Routes(s.name, streams, func(sr *table.StreamRoute) (R, error) {
		set, err := pick.New(sr.Backends)
		if err != nil {
			var zero R
			return zero, err
		}
		services[sr.ProxyPort] = sr.Service
		return build(sr, set)
	})
	if err != nil {
		return err
	}
	if err := s.apply(routes, func(port int32) string { return services[port].String() }); err != nil {
		return err
	}
	if applied != nil {
		applied()
	}
	return nil
}

func (s *Set[R, L]) apply(routes map[int32]R, describe func(port int32) string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("%s: %w", s.name, ErrClosed)
	}
	ports := make([]int32, 0, len(routes))
	for port := range routes {
		ports = append(ports, port)
	}
	slices.Sort(ports)

	opened := map[int32]L{}
	for _, port := range ports {
		if _, ok := s.listeners[port]; ok {
			continue
		}
		l, err := s.listen(port)
		if err != nil {
			for _, o := range opened {
				o.Close()
			}
			return fmt.Errorf("%s port %d (%s): %w", s.name, port, describe(port), err)
		}
		opened[port] = l
	}

	for _, port := range ports {
		if l, ok := s.listeners[port]; ok {
			l.Swap(routes[port])
		}
	}
	for _, port := range ports {
		if l, ok := opened[port]; ok {
			l.Swap(routes[port])
			s.listeners[port] = l
			s.wg.Go(l.Serve)
		}
	}
	for port, l := range s.listeners {
		if _, ok := routes[port]; !ok {
			l.Close()
			delete(s.listeners, port)
		}
	}
	return nil
}

// Routes builds a route for each stream route of a table, keyed by proxy
// port, for Apply. A port out of range or used twice, or a build error, is
// an error naming the port and its service: the table is refused whole.
func Routes[R any](name string, streams []table.StreamRoute, build func(sr *table.StreamRoute) (R, error)) (map[int32]R, error) {
	routes := make(map[int32]R, len(streams))
	owner := make(map[int32]table.ServiceRef, len(streams))
	for i := range streams {
		sr := &streams[i]
		if sr.ProxyPort <= 0 || sr.ProxyPort > 65535 {
			return nil, fmt.Errorf("%s port %d (%s): out of range", name, sr.ProxyPort, sr.Service)
		}
		if prev, ok := owner[sr.ProxyPort]; ok {
			return nil, fmt.Errorf("%s port %d: used by both %s and %s", name, sr.ProxyPort, prev, sr.Service)
		}
		r, err := build(sr)
		if err != nil {
			return nil, fmt.Errorf("%s port %d (%s): %w", name, sr.ProxyPort, sr.Service, err)
		}
		routes[sr.ProxyPort], owner[sr.ProxyPort] = r, sr.Service
	}
	return routes, nil
}

// Get returns the listener of port, if open. Its first route is swapped
// in before Get can return it.
func (s *Set[R, L]) Get(port int32) (L, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.listeners[port]
	return l, ok
}

// Ports returns the ports with an open listener, sorted.
func (s *Set[R, L]) Ports() []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	ports := make([]int32, 0, len(s.listeners))
	for p := range s.listeners {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	return ports
}

// Go runs f on a goroutine that Close waits for: a listener's connections
// or sessions. A listener calls it only while open, so that no goroutine
// starts after Close returned.
func (s *Set[R, L]) Go(f func()) { s.wg.Go(f) }

// Close closes every listener and waits for Serve and Go's goroutines to
// end. Apply fails after Close.
func (s *Set[R, L]) Close() {
	s.mu.Lock()
	s.closed = true
	for port, l := range s.listeners {
		l.Close()
		delete(s.listeners, port)
	}
	s.mu.Unlock()
	s.wg.Wait()
}
