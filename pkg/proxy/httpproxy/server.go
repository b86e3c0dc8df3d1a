package httpproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ServerOptions are the client-side settings of the shared listener.
type ServerOptions struct {
	// ReadHeaderTimeout bounds reading a request's headers (slowloris).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a client keep-alive connection idle this long.
	IdleTimeout time.Duration
	// StdServer serves HTTP/1 with net/http's server instead of this
	// package's (see Server).
	StdServer bool
}

// Server is the HTTP server of the shared listener: HTTP/1.1 and HTTP/1.0,
// and HTTP/2 over cleartext with prior knowledge (h2c), on one port. There
// is no read or write timeout on the whole exchange: uploads, streams and
// WebSockets may legitimately last long; the backend's timeouts govern.
//
// HTTP/1 is served by this package's connection loop (serverConn), not
// net/http's server. Why: on the node proxy's one core, net/http's server
// costs about a sixth of the CPU of a proxied request and adds to the tail
// latency (docs/proxy.md, Performance). For every request it starts a
// goroutine that reads the connection in the background, to notice a
// client that goes away, and allocates its response state and a header
// snapshot. This loop parses requests with net/http's own parser
// (http.ReadRequest, which carries net/http's request-smuggling rules:
// Content-Length against Transfer-Encoding, chunk syntax), applies
// net/http's server checks on top (Host, header names and values, the
// header size limit), and frames responses by net/http's rules, ported
// from its chunkWriter.writeHeader: the same bytes on the wire for the
// same handler (server_diff_test.go). Its differences are deliberate and
// asserted there (docs/proxy.md lists them): the chief one is that a
// client that disconnects during a request with no body left to read is
// noticed once the handler has run for bgReadDelay, not at once.
//
// HTTP/2 connections are handed whole to a net/http server, which serves
// h2c natively since Go 1.24 (x/net/http2/h2c is deprecated in favour of
// it). ServerOptions.StdServer serves HTTP/1 with it too.
type Server struct {
	handler http.Handler
	opts    ServerOptions
	std     *http.Server // h2c, and everything when opts.StdServer
	stdL    *handoffListener
	stdOnce sync.Once
	baseCtx context.Context

	// keepBuffers keeps idle connections' buffers (see shed); for tests.
	keepBuffers bool

	closing atomic.Bool
	mu      sync.Mutex
	lns     map[net.Listener]struct{}
	conns   map[*serverConn]struct{}
}

// NewServer returns the server of the shared listener.
func NewServer(h http.Handler, opts ServerOptions) *Server {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	std := &http.Server{
		Handler:           h,
		Protocols:         p,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       opts.IdleTimeout,
		// Errors such as a client hanging up mid-body are routine for a
		// proxy; net/http would log each one.
		ErrorLog: discardLog,
	}
	return &Server{
		handler: h,
		opts:    opts,
		std:     std,
		stdL:    newHandoffListener(),
		baseCtx: context.WithValue(context.Background(), http.ServerContextKey, std),
		lns:     make(map[net.Listener]struct{}),
		conns:   make(map[*serverConn]struct{}),
	}
}

var discardLog = log.New(io.Discard, "", 0)

// Serve accepts connections on l until the server is shut down, and then
// returns http.ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	if s.opts.StdServer {
		return s.std.Serve(l)
	}
	if !s.track(l, true) {
		return http.ErrServerClosed
	}
	defer s.track(l, false)
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			// As net/http: back off on temporary errors (EMFILE).
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		sc := s.newConn(c)
		if sc == nil {
			c.Close()
			continue
		}
		go sc.serve()
	}
}

func (s *Server) track(l net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closing.Load() {
			return false
		}
		s.lns[l] = struct{}{}
	} else {
		delete(s.lns, l)
	}
	return true
}

func (s *Server) newConn(c net.Conn) *serverConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return nil
	}
	sc := &serverConn{s: s, c: c}
	s.conns[sc] = struct{}{}
	return sc
}

func (s *Server) forget(sc *serverConn) {
	s.mu.Lock()
	delete(s.conns, sc)
	s.mu.Unlock()
}

// handToStd hands c, with the bytes already read from it, to the net/http
// server.
func (s *Server) handToStd(c net.Conn, buffered []byte) {
	s.stdOnce.Do(func() { go func() { _ = s.std.Serve(s.stdL) }() })
	if len(buffered) > 0 {
		c = &prefixConn{Conn: c, r: io.MultiReader(bytes.NewReader(buffered), c)}
	}
	if !s.stdL.hand(c) {
		c.Close()
	}
}

// shutdownPoll is how often Shutdown looks for connections that became
// idle. net/http polls too, from 1 ms up to 500 ms.
const shutdownPoll = 10 * time.Millisecond

// Shutdown stops accepting connections, closes idle ones, and waits for
// the requests in flight to end (their connections close after the
// response) or ctx to be done. It returns ctx's error if ctx ended first;
// the connections still open are then left to Close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeListeners()
	stdDone := make(chan error, 1)
	go func() { stdDone <- s.std.Shutdown(ctx) }()
	t := time.NewTicker(shutdownPoll)
	defer t.Stop()
	for {
		if s.closeIdle() {
			select {
			case err := <-stdDone:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.closeListeners()
	err := s.std.Close()
	s.mu.Lock()
	for sc := range s.conns {
		sc.state.Store(connClosed)
		sc.c.Close()
	}
	s.mu.Unlock()
	return err
}

func (s *Server) closeListeners() {
	s.closing.Store(true)
	s.stdL.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for l := range s.lns {
		l.Close()
	}
}

// closeIdle closes the connections waiting for a request and reports
// whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sc := range s.conns {
		if sc.state.CompareAndSwap(connIdle, connClosed) {
			sc.c.Close()
		}
	}
	return len(s.conns) == 0
}

// handoffListener is the net/http server's listener: the connections
// handed to it.
type handoffListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newHandoffListener() *handoffListener {
	return &handoffListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoffListener) hand(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return handoffAddr{} }

type handoffAddr struct{}

func (handoffAddr) Network() string { return "handoff" }
func (handoffAddr) String() string  { return "handoff" }

// prefixConn is a connection whose first reads return bytes read from it
// before.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }
