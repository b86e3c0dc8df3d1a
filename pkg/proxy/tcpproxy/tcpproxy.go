// Package tcpproxy is the node proxy's TCP data plane: one listener per
// table.StreamRoute ProxyPort, each connection sent to a backend endpoint
// chosen by weight, and bytes copied both ways with half-close.
//
// Reloads: Apply swaps a port's route with one atomic store. A listener is
// opened or closed only when the set of ports changes. Open connections keep
// the backend they were connected to, as long as their port stays in the
// table and Options.Admit still admits them; when a port leaves the table
// its listener and its open connections are closed, since nothing would
// route to that port any more.
package tcpproxy

import (
	"context"
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
	DefaultConnectTimeout  = 5 * time.Second
	DefaultConnectAttempts = 3
	// DefaultIdleTimeout matches Envoy's TCP proxy default: long-lived
	// quiet connections (databases) are common in a mesh.
	DefaultIdleTimeout = time.Hour
)

// AdmitFunc decides at accept time whether a connection from source may use
// route, which belongs to table t. It is where ACL enforcement plugs in.
type AdmitFunc func(t *table.Table, route *table.StreamRoute, source netip.Addr) bool

// Options configures a Manager. The zero value is usable.
type Options struct {
	// ListenAddress is the IP every listener binds; "" means all addresses.
	ListenAddress string
	// ConnectTimeout bounds one connect attempt to a backend endpoint.
	// Zero means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// ConnectAttempts is how many endpoints are tried, in the order of
	// pick.Set.Candidates, before the client connection is closed. Zero
	// means DefaultConnectAttempts.
	ConnectAttempts int
	// IdleTimeout closes a connection that moved no byte in either
	// direction for this long (at most twice this long; see tunnel.pump).
	// Zero means DefaultIdleTimeout; negative means never.
	IdleTimeout time.Duration
	// Registerer receives the nodemesh_proxy_tcp_* metrics; nil means they
	// are kept but not registered.
	Registerer prometheus.Registerer
	// Logger receives connect failures and accept errors; nil discards them.
	Logger *slog.Logger
	// Node is the node this proxy runs on, for locality-aware balancing
	// (its zone comes from the table's Nodes); empty means unknown.
	Node string
	// Admit, when set, is asked about every accepted connection before a
	// backend is dialled, and again about every open connection of a port
	// whenever Apply gives that port a new table; a refused connection is
	// closed at once. Nil admits every connection.
	Admit AdmitFunc
	// EdgeMetrics turns on nodemesh_proxy_edge_tcp_* (edges.go): by source
	// workload, destination and backend. Off in the zero value.
	EdgeMetrics bool
	// Sources names clients for edge metrics and the access log; share one
	// among the data planes. Nil means one of the Manager's own.
	Sources *edges.Resolver
	// AccessLog, when set, receives an entry per connection.
	AccessLog *accesslog.Logger
}

// Manager owns the TCP listeners of one proxy. Its methods are safe for
// concurrent use.
type Manager struct {
	opts    Options
	metrics *metrics
	edges   *edgeMetrics // nil: no edge metrics, no access log
	dialer  net.Dialer
	// ports holds the listeners; its goroutines are the accept loops and
	// the connections.
	// Its ApplyStreams runs one Apply at a time, so edge series follow
	// table order.
	ports *portset.Set[*route, *listener]
}

// New returns a Manager with no listeners; call Apply to open them.
func New(opts Options) *Manager {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.ConnectAttempts <= 0 {
		opts.ConnectAttempts = DefaultConnectAttempts
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := &Manager{
		opts:    opts,
		metrics: newMetrics(opts.Registerer),
		edges:   newEdgeMetrics(&opts),
		dialer:  net.Dialer{Timeout: opts.ConnectTimeout},
	}
	m.ports = portset.New[*route]("tcp proxy", m.listen)
	return m
}

// Apply makes the listeners match t.TCP. It is all-or-nothing: it checks
// every route and opens every new listener first; on any failure it closes
// the listeners it just opened, returns an error naming the port, and leaves
// the previous state serving (portset.Set.ApplyStreams). The Manager keeps
// t: callers must not modify it afterwards.
func (m *Manager) Apply(t *table.Table) error {
	return m.ports.ApplyStreams(t.TCP, func(sr *table.StreamRoute, set *pick.Set) (*route, error) {
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

// Close closes every listener and every open connection, and waits for
// their goroutines to end. Apply fails after Close.
func (m *Manager) Close() error {
	m.ports.Close()
	return nil
}

func (m *Manager) listen(port int32) (*listener, error) {
	addr := net.JoinHostPort(m.opts.ListenAddress, fmt.Sprint(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &listener{
		mgr:    m,
		port:   port,
		ln:     ln.(*net.TCPListener),
		ctx:    ctx,
		cancel: cancel,
		conns:  map[*net.TCPConn]netip.Addr{},
	}, nil
}
