package udpproxy

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nodemesh/nodemesh/pkg/proxy/pick"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// maxDatagram is the largest UDP payload over IPv4.
const maxDatagram = 65507

// replyBuffers holds buffers for backend replies. A session's goroutine
// takes one only while a reply is ready to read (see session.readReply), so
// idle sessions hold no 64 KiB buffer each.
var replyBuffers = sync.Pool{New: func() any {
	b := make([]byte, maxDatagram)
	return &b
}}

// route is what a listener serves; it is replaced as a whole on Apply.
type route struct {
	table   *table.Table
	stream  *table.StreamRoute
	set     *pick.Set
	metrics routeMetrics
	policy  routePolicy // idle timeout, locality (policy.go)
	edges   *edgeRoute  // edge metrics and access log (edges.go); nil when off
}

// listener is one proxy port with its session table.
type listener struct {
	mgr   *Manager
	port  int32
	conn  *net.UDPConn
	route atomic.Pointer[route]
	// dsts is true when conn reports each datagram's destination, so that
	// replies leave from it (replysource.go).
	dsts bool

	mu       sync.Mutex
	sessions map[netip.AddrPort]*session
	closed   bool
}

// session binds one client address to one backend endpoint through a
// connected socket.
type session struct {
	l        *listener
	client   netip.AddrPort
	endpoint netip.AddrPort
	backend  *net.UDPConn
	// reply is the control message that sends replies from the address
	// the client sent to; nil when the listener has a single address.
	reply   []byte
	metrics routeMetrics
	// picked is the endpoint chosen by locality (policy.go), released when
	// the session ends; nil without locality.
	picked *picked
	// edge follows the session for edge metrics and the access log.
	edge *edgeSession
	// last is when a datagram last passed either way, on the Manager clock.
	last      atomic.Int64
	closeOnce sync.Once
}

// Swap installs r and closes sessions whose endpoint r no longer has, or
// whose client r no longer admits.
func (l *listener) Swap(r *route) {
	l.route.Store(r)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.sessions {
		if !r.set.Contains(s.endpoint) || !l.admitted(r, s.client) {
			s.removeLocked()
		}
	}
}

// Close stops the listener and every session of this port.
func (l *listener) Close() {
	l.conn.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for _, s := range l.sessions {
		s.removeLocked()
	}
}

// Serve forwards client datagrams to their sessions until the listener is
// closed.
func (l *listener) Serve() {
	buf := make([]byte, maxDatagram)
	var oob []byte
	if l.dsts {
		oob = make([]byte, oobSize)
	}
	for {
		n, oobn, _, client, err := l.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.mgr.opts.Logger.Warn("udp proxy: read failed", "port", l.port, "error", err)
			time.Sleep(10 * time.Millisecond) // bounded retry rate on a persistent error
			continue
		}
		s := l.session(client, oob[:oobn])
		if s == nil {
			continue
		}
		s.last.Store(int64(l.mgr.now()))
		if _, err := s.backend.Write(buf[:n]); err != nil {
			// ECONNREFUSED reports an ICMP unreachable from an earlier
			// datagram: end the session so the next datagram picks again.
			s.metrics.backendErrorDrop.Inc()
			s.remove()
			continue
		}
		s.metrics.toBackend.Inc()
	}
}

// session returns client's session, opening one when there is none; oob is
// the datagram's control message (its destination address, see
// replysource.go). It returns nil, having counted the drop, when the
// datagram must be dropped.
func (l *listener) session(client netip.AddrPort, oob []byte) *session {
	l.mu.Lock()
	s := l.sessions[client]
	l.mu.Unlock()
	if s != nil {
		return s
	}

	r := l.route.Load()
	if admit := l.mgr.opts.Admit; admit != nil && !admit(r.table, r.stream, client.Addr().Unmap()) {
		r.metrics.denied.Inc()
		return nil
	}
	// Only this goroutine adds sessions, so the count cannot grow between
	// this check and the insert below.
	l.mu.Lock()
	full := len(l.sessions) >= l.mgr.opts.MaxSessions
	l.mu.Unlock()
	if full {
		r.metrics.sessionLimit.Inc()
		return nil
	}
	cands, chosen := r.candidates()
	if len(cands) == 0 {
		r.metrics.noEndpoints.Inc()
		return nil
	}
	for _, ep := range cands {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ep))
		if err != nil {
			l.mgr.opts.Logger.Debug("udp proxy: open backend socket failed", "service", r.stream.Service.String(), "endpoint", ep.String(), "error", err)
			continue
		}
		edge, metrics := r.edges.open(client, ep, r.metrics)
		s = &session{l: l, client: client, endpoint: ep, backend: c, reply: replyControl(client, oob), metrics: metrics, picked: chosen, edge: edge}
		break
	}
	if s == nil {
		chosen.release()
		r.metrics.backendErrorDrop.Inc()
		return nil
	}
	s.last.Store(int64(l.mgr.now()))

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		s.backend.Close()
		chosen.release()
		return nil
	}
	l.sessions[client] = s
	s.metrics.sessions.Inc()
	s.metrics.active.Inc()
	l.mgr.ports.Go(s.replyLoop) // while open, so Close waits for it
	l.mu.Unlock()
	return s
}

// replyLoop sends the backend's replies to the client until the session is
// idle for the idle timeout or its socket is closed, then removes it.
func (s *session) replyLoop() {
	defer s.remove()
	rc, err := s.backend.SyscallConn()
	if err != nil {
		return
	}
	for {
		// The route's idle timeout, read each time: a new table may change it.
		expires := time.Duration(s.last.Load()) + s.l.route.Load().policy.idle
		left := expires - s.l.mgr.now()
		if left <= 0 {
			return
		}
		s.backend.SetReadDeadline(time.Now().Add(left))
		err := s.readReply(rc)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue // the loop re-checks the activity clock
		}
		if err != nil {
			return // closed, or ICMP unreachable from the backend
		}
	}
}

// readReply waits for one datagram from the backend and forwards it to the
// client. It reads through the raw socket so that a pooled buffer is taken
// only once the socket is readable.
func (s *session) readReply(rc syscall.RawConn) error {
	var rerr error
	err := rc.Read(func(fd uintptr) bool {
		bp := replyBuffers.Get().(*[]byte)
		defer replyBuffers.Put(bp)
		n, _, err := syscall.Recvfrom(int(fd), *bp, 0)
		if err == syscall.EAGAIN {
			return false // wait for readability
		}
		if err != nil {
			rerr = err
			return true
		}
		s.last.Store(int64(s.l.mgr.now()))
		if _, _, err := s.l.conn.WriteMsgUDPAddrPort((*bp)[:n], s.reply, s.client); err == nil {
			s.metrics.toClient.Inc()
		}
		return true
	})
	if err != nil {
		return err
	}
	return rerr
}

// remove closes the session and takes it out of the table, so the client's
// next datagram opens a new one.
func (s *session) remove() {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	s.removeLocked()
}

// removeLocked is remove with l.mu held. Closing the socket also ends the
// session's reply loop.
func (s *session) removeLocked() {
	s.closeOnce.Do(func() {
		s.backend.Close()
		s.picked.release()
		if s.l.sessions[s.client] == s {
			delete(s.l.sessions, s.client)
		}
		s.metrics.active.Dec()
		s.edge.close()
	})
}
