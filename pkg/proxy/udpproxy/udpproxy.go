// Package udpproxy is the node proxy's UDP data plane: one listener per
// table.StreamRoute ProxyPort and, per client address, a session with its
// own connected socket to one backend endpoint, so replies go back to the
// client that asked.
//
// Sessions end after IdleTimeout without a datagram either way. The session
// table of each port is capped at MaxSessions (default 1,024): a datagram
// from a new client beyond the cap is dropped and counted, so a flood of
// source addresses cannot exhaust file descriptors or memory.
//
// Reloads: Apply swaps a port's route with one atomic store; a listener is
// opened or closed only when the set of ports changes. A session keeps its
// endpoint while that endpoint is still in the port's new route (and Admit
// still admits it); sessions whose endpoint left it are closed, so the client's next datagram picks a
// live one (UDP has no connect failure to tell us). When a port leaves the
// table, its listener and sessions are closed.
package udpproxy

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/pkg/proxy/accesslog"
	"github.com/nodemesh/nodemesh/pkg/proxy/edges"
	"github.com/nodemesh/nodemesh/pkg/proxy/pick"
	"github.com/nodemesh/nodemesh/pkg/proxy/portset"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// Defaults for zero Options fields.
const (
	DefaultIdleTimeout = 60 * time.Second
	DefaultMaxSessions = 1024
	// connectAttempts bounds the endpoints tried when opening a session.
	// Opening a UDP socket fails only on local errors, so few suffice.
	connectAttempts = 3
)

// AdmitFunc decides whether datagrams from source may use route, which
// belongs to table t. It is asked when a new client session would be
// opened; it is where ACL enforcement plugs in.
type AdmitFunc func(t *table.Table, route *table.StreamRoute, source netip.Addr) bool

// Options configures a Manager. The zero value is usable.
type Options struct {
	// ListenAddress is the IP every listener binds; "" means all addresses.
	ListenAddress string
	// IdleTimeout ends a session with no datagram either way for this
	// long, on routes that set no IdleTimeout of their own. Zero means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Node is the node this proxy runs on, for locality-aware balancing
	// (its zone comes from the table's Nodes); empty means unknown.
	Node string
	// MaxSessions caps the sessions of each port. Zero means
	// DefaultMaxSessions.
	MaxSessions int
	// Registerer receives the nodemesh_proxy_udp_* metrics; nil means they
	// are kept but not registered.
	Registerer prometheus.Registerer
	// Logger receives socket errors; nil discards them.
	Logger *slog.Logger
	// Admit, when set, is asked before a session is opened for a new
	// client, and again about every session of a port whenever Apply gives
	// that port a new table; refused datagrams are dropped and refused
	// sessions closed. Nil admits every client.
	Admit AdmitFunc
	// EdgeMetrics turns on nodemesh_proxy_edge_udp_datagrams_total
	// (edges.go): by source workload, destination and backend. Off in the
	// zero value.
	EdgeMetrics bool
	// Sources names clients for edge metrics and the access log; share one
	// among the data planes. Nil means one of the Manager's own.
	Sources *edges.Resolver
	// AccessLog, when set, receives an entry per session when it ends.
	AccessLog *accesslog.Logger
}

// Manager owns the UDP listeners of one proxy. Its methods are safe for
// concurrent use.
type Manager struct {
	opts    Options
	metrics *metrics
	edges   *edgeMetrics // nil: no edge metrics, no access log
	epoch   time.Time    // origin of session activity clocks
	// ports holds the listeners; its goroutines are the read loops and the
	// sessions' reply loops.
	// Its ApplyStreams runs one Apply at a time, so edge series follow
	// table order.
	ports *portset.Set[*route, *listener]
}

// New returns a Manager with no listeners; call Apply to open them.
func New(opts Options) *Manager {
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := &Manager{
		opts:    opts,
		metrics: newMetrics(opts.Registerer),
		edges:   newEdgeMetrics(&opts),
		epoch:   time.Now(),
	}
	m.ports = portset.New[*route]("udp proxy", m.listen)
	return m
}

// Apply makes the listeners match t.UDP. It is all-or-nothing: it checks
// every route and opens every new listener first; on any failure it closes
// the listeners it just opened, returns an error naming the port, and leaves
// the previous state serving (portset.Set.ApplyStreams). The Manager keeps
// t: callers must not modify it afterwards.
func (m *Manager) Apply(t *table.Table) error {
	return m.ports.ApplyStreams(t.UDP, func(sr *table.StreamRoute, set *pick.Set) (*route, error) {
		r := &route{
			table:   t,
			stream:  sr,
			set:     set,
			metrics: m.metrics.forService(sr.Service.Namespace, sr.Service.Name),
			edges:   m.edges.forRoute(t, sr),
		}
		var err error
		r.policy, err = m.newRoutePolicy(t, sr)
		return r, err
	}, func() { m.edges.applied(t) })
}

// Ports returns the ports with an open listener, sorted.
func (m *Manager) Ports() []int32 { return m.ports.Ports() }

// Close closes every listener and session and waits for their goroutines to
// end. Apply fails after Close.
func (m *Manager) Close() error {
	m.ports.Close()
	return nil
}

func (m *Manager) listen(port int32) (*listener, error) {
	addr := net.JoinHostPort(m.opts.ListenAddress, fmt.Sprint(port))
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	conn := pc.(*net.UDPConn)
	dsts, err := askDestinations(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("asking for datagram destinations: %w", err)
	}
	return &listener{
		mgr:      m,
		port:     port,
		conn:     conn,
		dsts:     dsts,
		sessions: map[netip.AddrPort]*session{},
	}, nil
}

// now returns the Manager's monotonic clock.
func (m *Manager) now() time.Duration { return time.Since(m.epoch) }
