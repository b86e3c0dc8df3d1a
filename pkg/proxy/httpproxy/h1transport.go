package httpproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// h1Transport is the backend transport of scheme http. It sends HTTP/1.1
// requests over a pool of keep-alive connections from the calling
// goroutine, and hands net/http's Transport (fallback) every request it
// does not take.
//
// Why not net/http's Transport alone: it runs a read loop and a write loop
// goroutine per backend connection and passes each request and response
// between them and the caller over channels. For a node proxy, whose
// requests are mostly small GETs, those hand-offs (scheduler wake-ups,
// selects, channel allocations) are a measurable share of the CPU per
// request; see docs/proxy.md for the figures. Here the caller writes the
// request and reads the response head itself, and the response body is read
// straight from the connection.
//
// It takes only requests that need nothing else (lean): no body, no
// Upgrade, no Expect, and a method that is safe to send twice, because a
// keep-alive connection the backend has just closed is only noticed when
// the request fails on it, and the request is then sent again on a new
// connection (net/http does the same). Everything else (POSTs with bodies,
// WebSockets, 100-continue) goes to fallback.
type h1Transport struct {
	fallback      *http.Transport
	dial          dialFunc
	maxIdle       int           // idle connections kept per backend address
	idleTimeout   time.Duration // an idle connection older than this is closed
	headerTimeout time.Duration // the wait for response headers; 0 means none

	mu       sync.Mutex
	idle     map[string][]*h1Conn // by backend address; the newest last
	sweeping bool                 // an idle sweep is scheduled
}

// h1Conn is one backend connection.
type h1Conn struct {
	addr      string
	c         net.Conn
	w         waitReader // under br: c's reads, watching the request
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
	expire    func() // expires c's deadline; made once, not per request
	// The names and values of the last answer heads, and the last status,
	// which readFastResponse takes again without allocating.
	names  headNames
	status string
}

// lazyWatch is how long a read on a backend connection waits before the
// request's context is watched for its end (a client that left, a route
// timeout, a shutdown). Most answers come well within it, and for those no
// watch is set up at all: context.AfterFunc costs two allocations per
// request (its context and the request context's first child map), about
// a tenth of the bytes a plain request allocates, and so of the collections
// that delay requests. A request cancelled in that first stretch is
// noticed when it ends, at most lazyWatch late. Why not a slice deadline
// that polls the context for the whole wait: a long poll would then wake
// every slice for its whole life.
const lazyWatch = 50 * time.Millisecond

// waitReader is the reader of a backend connection while a request uses
// it. Its reads first wait under a short deadline (arm); a read that
// reaches it has waited lazyWatch, and only then does the request's
// context get a callback that expires the connection's deadline when it
// ends. Set up per request by arm, ended by end.
type waitReader struct {
	pc       *h1Conn
	ctx      context.Context
	headDL   time.Time   // the header timeout's deadline while the head is awaited; zero: none
	stop     func() bool // the context's callback, once registered
	watching bool        // ctx is watched (stop is set)
}

// arm starts a request's use of the connection: the read deadline is the
// first of lazyWatch from now, the header timeout and ctx's deadline.
func (r *waitReader) arm(ctx context.Context, now time.Time, headDL time.Time) {
	r.ctx, r.headDL, r.stop, r.watching = ctx, headDL, nil, false
	dl := now.Add(lazyWatch)
	if !headDL.IsZero() && headDL.Before(dl) {
		dl = headDL
	}
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = r.pc.c.SetReadDeadline(dl)
}

// headRead ends the header timeout: the body may take as long as it needs.
// It reports false when ctx ended meanwhile, whose expiry clearing the
// deadline may have undone.
func (r *waitReader) headRead() bool {
	if r.headDL.IsZero() {
		return true
	}
	r.headDL = time.Time{}
	if !r.watching {
		return true // the deadline armed is a lazy one: Read handles it
	}
	_ = r.pc.c.SetReadDeadline(time.Time{})
	return r.ctx.Err() == nil
}

// end ends the request's use of the connection. It reports false when the
// context's callback ran or is running: the connection's deadline may be
// expired, so it cannot be reused.
func (r *waitReader) end() bool {
	ok := !r.watching || r.stop()
	r.ctx, r.stop, r.watching = nil, nil, false
	return ok
}

func (r *waitReader) Read(p []byte) (int, error) {
	for {
		n, err := r.pc.c.Read(p)
		if n > 0 || err == nil || r.watching || r.ctx == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		// The armed deadline passed without an answer: the header
		// timeout's, or the context's or lazyWatch's.
		if r.ctx.Err() != nil {
			return 0, err // the caller reports the context's cause
		}
		if !r.headDL.IsZero() && !time.Now().Before(r.headDL) {
			return 0, err // the header timeout
		}
		r.watch() // a long wait
	}
}

// watch makes the context's end expire the connection's deadline from now
// on, and arms only the header timeout. The deadline is set before the
// callback is registered, so a callback that runs at once is not undone.
func (r *waitReader) watch() {
	_ = r.pc.c.SetReadDeadline(r.headDL)
	r.stop, r.watching = context.AfterFunc(r.ctx, r.pc.expire), true
}

// eagerWatchBytes is the request head size from which the context is
// watched before the head is written. A write blocks only when the socket's
// send buffer is full, which a head this small cannot fill on a connection
// whose last answer was read; a larger one (net/http accepts 1 MiB of
// client headers) could block on a backend that stopped reading, and only
// the context's end would then unblock it.
const eagerWatchBytes = 16 << 10

// headBytes is about the size of req's head: its target and headers, the
// bulk of what the forwarder or Request.Write sends.
func headBytes(req *http.Request) int {
	n := len(req.Host) + len(req.URL.Path) + len(req.URL.RawQuery) + len(req.RequestURI)
	for k, vv := range req.Header {
		for _, v := range vv {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// dialFunc connects to a backend: net.Dialer.DialContext, or that wrapped
// by sockio.DialContext.
type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

func newH1Transport(fallback *http.Transport, dial dialFunc, maxIdle int, idleTimeout, headerTimeout time.Duration) *h1Transport {
	return &h1Transport{
		fallback: fallback, dial: dial, maxIdle: maxIdle,
		idleTimeout: idleTimeout, headerTimeout: headerTimeout,
		idle: map[string][]*h1Conn{},
	}
}

// lean reports whether req is one this transport sends itself.
func lean(req *http.Request) bool {
	return req.URL.Scheme == "http" &&
		(req.Body == nil || req.Body == http.NoBody) && req.ContentLength == 0 &&
		len(req.TransferEncoding) == 0 && len(req.Trailer) == 0 &&
		req.Header.Get("Upgrade") == "" && req.Header.Get("Expect") == "" &&
		replayable(req)
}

// RoundTrip implements http.RoundTripper.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !lean(req) {
		return t.fallback.RoundTrip(req)
	}
	return t.send(req, nil)
}

// send sends a lean request: its head is head when set (h1Forwarder's
// plain requests, whose Close is taken as false, as httputil sets it),
// else req.Write's.
func (t *h1Transport) send(req *http.Request, head *reqHead) (*http.Response, error) {
	ctx := req.Context()
	addr := req.URL.Host
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), "80")
	}
	for retried := false; ; retried = true {
		// A retry dials afresh: the connections idle beside a stale one
		// are likely stale too (the backend restarted or timed them out).
		var pc *h1Conn
		var reused bool
		if !retried {
			if pc, reused = t.getIdle(addr); reused {
				pc.take()
			}
		}
		if pc == nil {
			var err error
			if pc, err = t.connect(ctx, addr); err != nil {
				return nil, err
			}
		}
		resp, err := t.roundTrip(ctx, pc, req, head)
		if err == nil {
			return resp, nil
		}
		pc.c.Close()
		if reused && ctx.Err() == nil && closedByPeer(err) {
			continue // the backend closed this idle connection: send again on another
		}
		return nil, err
	}
}

// closedByPeer reports whether err says the backend closed the connection
// before answering anything: end of stream before the status line, or a
// reset.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// roundTrip writes req on pc and reads the response head. The response body
// reads from pc; its end returns pc to the pool.
func (t *h1Transport) roundTrip(ctx context.Context, pc *h1Conn, req *http.Request, head *reqHead) (*http.Response, error) {
	// A cancelled request (the client left, or the route's timeout passed)
	// unblocks a pending read by expiring the connection's deadline; see
	// waitReader for when that watch is set up.
	var headDL time.Time
	now := time.Now()
	if t.headerTimeout > 0 {
		headDL = now.Add(t.headerTimeout)
	}
	pc.w.arm(ctx, now, headDL)
	if headBytes(req) >= eagerWatchBytes {
		pc.w.watch()
	}
	fail := func(err error) (*http.Response, error) {
		pc.w.end()
		if ctx.Err() != nil {
			// The round trip's error is the context's cause, as with
			// net/http: errorHandler turns a route timeout into its 504.
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	var err error
	if head != nil {
		err = head.write(pc.bw)
	} else {
		err = req.Write(pc.bw)
	}
	if err != nil {
		return fail(err)
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(err)
	}
	// The first byte separates a connection the backend had closed (EOF
	// before anything: send again elsewhere) from a broken answer, which
	// ReadResponse would report alike as an unexpected EOF.
	if _, err := pc.br.Peek(1); err != nil {
		return fail(err)
	}
	var resp *http.Response
	fast := head != nil && req.Method == http.MethodGet && pc.readFastResponse(req, head.res())
	if fast {
		resp = &head.resp
	}
	for resp == nil {
		r, err := http.ReadResponse(pc.br, req)
		if err != nil {
			return fail(err)
		}
		// Informational answers (103 Early Hints) precede the real one.
		// 101 cannot come: Upgrade requests go to fallback.
		if r.StatusCode >= 200 || r.StatusCode < 100 {
			resp = r
		}
	}
	if !pc.w.headRead() {
		// Cancelled while the deadline was being cleared: the expiry
		// may have been undone.
		return fail(ctx.Err())
	}
	reusable := !resp.Close && (head != nil || !req.Close)
	if resp.Body == http.NoBody || fast && resp.ContentLength == 0 {
		resp.Body = http.NoBody
		t.release(pc, reusable)
		return resp, nil
	}
	var body *h1Body
	if head != nil {
		body = &head.body // the forwarder's, for as long as it serves the request
	} else {
		body = new(h1Body)
	}
	*body = h1Body{t: t, pc: pc, body: resp.Body, reusable: reusable, ctx: ctx}
	if fast {
		body.body, body.remain = nil, resp.ContentLength
	}
	resp.Body = body
	return resp, nil
}

// expired is a deadline in the past.
var expired = time.Unix(1, 0)

// release ends pc's use by one request: back to the pool if the exchange
// ended cleanly and the connection may carry another, closed otherwise.
func (t *h1Transport) release(pc *h1Conn, reusable bool) {
	// Bytes after the end of the answer are a broken backend: they would
	// be read as the next request's answer.
	if !pc.w.end() || !reusable || pc.br.Buffered() > 0 || pc.bw.Buffered() > 0 {
		pc.c.Close()
		return
	}
	pc.drop()
	t.putIdle(pc)
}

// h1Body is a response body read from a pooled connection: through
// net/http's body reader (body), or, for an answer readFastResponse took,
// straight from the read buffer (remain bytes left).
type h1Body struct {
	t        *h1Transport
	pc       *h1Conn
	body     io.ReadCloser
	remain   int64
	ctx      context.Context
	reusable bool
	done     bool // the connection is released or closed
	eof      bool // the body was read to its end
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if b.done {
		return 0, errors.New("httpproxy: read on a closed response body")
	}
	var n int
	var err error
	if b.body != nil {
		n, err = b.body.Read(p)
	} else {
		n, err = b.readDirect(p)
	}
	switch {
	case err == io.EOF:
		b.done, b.eof = true, true
		b.t.release(b.pc, b.reusable)
	case err != nil:
		b.done = true
		b.pc.w.end()
		b.pc.c.Close()
		if b.ctx.Err() != nil {
			err = context.Cause(b.ctx)
		}
	}
	return n, err
}

// readDirect reads the rest of a body of known length from the buffer, as
// net/http's body reader does: the last bytes come with io.EOF, and an
// early end is io.ErrUnexpectedEOF.
func (b *h1Body) readDirect(p []byte) (int, error) {
	if b.remain <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := b.pc.br.Read(p)
	b.remain -= int64(n)
	if b.remain == 0 {
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Close drops the connection unless the body was read to its end: what is
// left of it would have to be read before the connection could be reused.
func (b *h1Body) Close() error {
	if !b.done {
		b.done = true
		b.pc.w.end()
		b.pc.c.Close()
	}
	return nil
}

func (t *h1Transport) connect(ctx context.Context, addr string) (*h1Conn, error) {
	c, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	pc := &h1Conn{addr: addr, c: c}
	pc.w.pc = pc
	pc.expire = func() { _ = c.SetDeadline(expired) }
	pc.take()
	return pc, nil
}

// take gives pc read and write buffers, from the server's pools. drop
// gives them back: an idle pooled connection holds none, so the memory of
// the idle pool (up to MaxIdleConnsPerHost per endpoint, to every endpoint
// the node's clients called lately) does not grow with buffers. drop is
// only for a connection that ended an exchange cleanly: nothing buffered
// either way, and no body reader left on br.
func (pc *h1Conn) take() {
	pc.bw = getWriter(&bufWriters, pc.c)
	pc.br = getReader(&pc.w)
}

func (pc *h1Conn) drop() {
	putWriter(&bufWriters, pc.bw)
	putReader(pc.br)
	pc.bw, pc.br = nil, nil
}

// getIdle takes the newest idle connection to addr that is not too old.
func (t *h1Transport) getIdle(addr string) (*h1Conn, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	conns := t.idle[addr]
	for len(conns) > 0 {
		pc := conns[len(conns)-1]
		conns[len(conns)-1] = nil
		conns = conns[:len(conns)-1]
		if time.Since(pc.idleSince) < t.idleTimeout {
			t.idle[addr] = conns
			return pc, true
		}
		pc.c.Close()
	}
	delete(t.idle, addr)
	return nil, false
}

func (t *h1Transport) putIdle(pc *h1Conn) {
	pc.idleSince = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	conns := t.idle[pc.addr]
	if len(conns) >= t.maxIdle {
		pc.c.Close()
		return
	}
	t.idle[pc.addr] = append(conns, pc)
	if !t.sweeping {
		t.sweeping = true
		time.AfterFunc(t.idleTimeout, t.sweep)
	}
}

// sweep closes the connections idle for longer than idleTimeout (those to
// endpoints that left the table would otherwise stay open), and schedules
// itself again while any are idle.
func (t *h1Transport) sweep() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	for addr, conns := range t.idle {
		kept := conns[:0]
		for _, pc := range conns {
			if now.Sub(pc.idleSince) >= t.idleTimeout {
				pc.c.Close()
			} else {
				kept = append(kept, pc)
			}
		}
		clear(conns[len(kept):])
		if len(kept) == 0 {
			delete(t.idle, addr)
		} else {
			t.idle[addr] = kept
		}
	}
	t.sweeping = len(t.idle) > 0
	if t.sweeping {
		time.AfterFunc(t.idleTimeout/2, t.sweep)
	}
}

// CloseIdleConnections closes every idle connection, its own and
// fallback's.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	for addr, conns := range t.idle {
		for _, pc := range conns {
			pc.c.Close()
		}
		delete(t.idle, addr)
	}
	t.mu.Unlock()
	t.fallback.CloseIdleConnections()
}
