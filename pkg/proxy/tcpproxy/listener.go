package tcpproxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodemesh/nodemesh/pkg/proxy/pick"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// route is what a listener serves; it is replaced as a whole on Apply.
type route struct {
	table   *table.Table
	stream  *table.StreamRoute
	set     *pick.Set
	metrics routeMetrics
	policy  routePolicy // idle timeout, connection cap, locality (policy.go)
	edges   *edgeRoute  // edge metrics and access log (edges.go); nil when off
}

// listener is one proxy port. Its route is swapped atomically; accepted
// connections read it once, at accept.
type listener struct {
	mgr   *Manager
	port  int32
	ln    *net.TCPListener
	route atomic.Pointer[route]
	// ctx is cancelled when the port leaves the table, aborting dials.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	conns  map[*net.TCPConn]netip.Addr // client connections being served, by source
	closed bool
	// open counts the connections being served, for max-connections; it
	// belongs to the port, so a new table keeps the count.
	open atomic.Int64
}

// Swap installs r for new connections and closes the open ones r no longer
// admits (revoke.go).
func (l *listener) Swap(r *route) {
	l.route.Store(r)
	l.revoke(r)
}

// Close stops accepting and closes every connection of this port.
func (l *listener) Close() {
	l.ln.Close()
	l.cancel()
	l.mu.Lock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
}

// track registers c, from source src, so close and revoke can reach it; it
// reports false (and closes c) when the listener is already closed.
func (l *listener) track(c *net.TCPConn, src netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return false
	}
	l.conns[c] = src
	return true
}

func (l *listener) untrack(c *net.TCPConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// Serve accepts until the listener is closed. Temporary errors (out of
// file descriptors) back off as net/http's Server does, up to one second.
func (l *listener) Serve() {
	var delay time.Duration
	for {
		c, err := l.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.mgr.opts.Logger.Warn("tcp proxy: accept failed", "port", l.port, "error", err, "retryIn", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		src := sourceOf(c)
		if !l.track(c, src) {
			continue
		}
		l.mgr.ports.Go(func() {
			defer l.untrack(c)
			l.serve(c, src)
		})
	}
}

// serve handles one client connection: admission, backend connect with
// failover, then the tunnel.
func (l *listener) serve(client *net.TCPConn, src netip.Addr) {
	r := l.route.Load()
	ec := r.edges.open(src)
	defer ec.close()
	if admit := l.mgr.opts.Admit; admit != nil {
		if !admit(r.table, r.stream, src) {
			r.metrics.denied.Inc()
			ec.fail(resultDenied)
			client.Close()
			return
		}
	}
	if !l.enter(r) {
		r.metrics.limited.Inc()
		ec.fail(resultLimited)
		client.Close()
		return
	}
	defer l.open.Add(-1)
	backend, result, ep := l.dial(r)
	if ep != nil {
		defer r.policy.bal.Release(ep)
	}
	if backend == nil {
		if result == resultNoEndpoints {
			r.metrics.noEndpoints.Inc()
		} else {
			r.metrics.connectError.Inc()
		}
		ec.fail(result)
		client.Close()
		return
	}
	r.metrics.ok.Inc()
	r.metrics.active.Inc()
	defer r.metrics.active.Dec()
	newTunnel(client, backend, r.policy.idle, ec.connected(backend, r.metrics)).run()
}

// connect dials the route's candidates in order until one accepts.
func (l *listener) connect(r *route) (*net.TCPConn, string) {
	cands := r.set.Candidates(l.mgr.opts.ConnectAttempts)
	if len(cands) == 0 {
		return nil, resultNoEndpoints
	}
	for _, ap := range cands {
		c, err := l.mgr.dialer.DialContext(l.ctx, "tcp", ap.String())
		if err == nil {
			return c.(*net.TCPConn), resultOK
		}
		if l.ctx.Err() != nil {
			break
		}
		l.mgr.opts.Logger.Debug("tcp proxy: connect failed", "service", r.stream.Service.String(), "endpoint", ap.String(), "error", err)
	}
	return nil, resultConnectError
}
