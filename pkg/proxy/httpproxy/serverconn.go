package httpproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Connection states, for Shutdown.
const (
	connIdle   int32 = iota // waiting for a request (or new)
	connActive              // reading a request or serving it
	connClosed              // closed by Shutdown or Close
)

// bgReadDelay is how long a handler runs before its connection is read in
// the background to notice a client that has gone away (which cancels the
// request's context). net/http starts that read for every request; most
// proxied requests are answered well within this, and skipping it saves
// a goroutine, a read that finds nothing, and two wake-ups per request.
const bgReadDelay = 50 * time.Millisecond

// maxHeaderBytes is net/http's DefaultMaxHeaderBytes, with its 4 KiB of
// slack for the read buffer.
const maxHeaderBytes = http.DefaultMaxHeaderBytes + 4096

// maxPostHandlerReadBytes is how much of a request body the handler left
// unread is read and dropped to keep the connection (net/http's figure).
const maxPostHandlerReadBytes = 256 << 10

var (
	bufReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	bufWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
	// chunkWriters hold a response's body before it is framed.
	chunkWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufferBeforeChunking) }}
)

// getReader takes a buffer of bufReaders that reads from r. putReader
// gives it back holding nothing, so that the pool keeps no connection.
func getReader(r io.Reader) *bufio.Reader {
	br := bufReaders.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	bufReaders.Put(br)
}

// getWriter takes a buffer of pool (bufWriters or chunkWriters) that
// writes to w; putWriter gives it back holding nothing.
func getWriter(pool *sync.Pool, w io.Writer) *bufio.Writer {
	bw := pool.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

func putWriter(pool *sync.Pool, bw *bufio.Writer) {
	bw.Reset(nil)
	pool.Put(bw)
}

// serverConn is one HTTP/1 client connection.
type serverConn struct {
	s     *Server
	c     net.Conn
	state atomic.Int32

	cr     connReader
	br     *bufio.Reader
	bw     *bufio.Writer
	werr   error // the first write error
	remote string
	ctx    context.Context
	res    response    // reused for each request
	fast   fastRequest // reads plain request heads, into one Request again

	lastMethod string
	hijacked   bool

	// The background read (see bgReadDelay). mu guards the fields below.
	mu        sync.Mutex
	bgTimer   *time.Timer
	inHandler bool // a handler is running with its request body done
	timedOut  bool // bgTimer fired during this request
	bgActive  bool
	aborting  bool
	bgDone    chan struct{}
	cancelReq context.CancelFunc
}

// connReader is the reader under the connection's bufio.Reader: it limits
// the bytes a request head may take and returns the byte a background read
// took first (net/http's connReader).
type connReader struct {
	c       net.Conn
	limited bool
	remain  int64
	hasByte bool
	byteBuf [1]byte
}

func (cr *connReader) Read(p []byte) (int, error) {
	if cr.limited {
		if cr.remain <= 0 {
			return 0, io.EOF // net/http's too: ReadRequest fails, then 431
		}
		if int64(len(p)) > cr.remain {
			p = p[:cr.remain]
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if cr.hasByte {
		p[0] = cr.byteBuf[0]
		cr.hasByte = false
		cr.remain--
		return 1, nil
	}
	n, err := cr.c.Read(p)
	cr.remain -= int64(n)
	return n, err
}

// connWriter records the connection's first write error and cancels the
// request in flight, as net/http's checkConnErrorWriter.
type connWriter struct{ sc *serverConn }

func (w connWriter) Write(p []byte) (int, error) {
	n, err := w.sc.c.Write(p)
	if err != nil && w.sc.werr == nil {
		w.sc.werr = err
		w.sc.mu.Lock()
		if w.sc.cancelReq != nil {
			w.sc.cancelReq()
		}
		w.sc.mu.Unlock()
	}
	return n, err
}

// h2Preface is the first bytes of an HTTP/2 connection.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

func (sc *serverConn) serve() {
	s := sc.s
	if ra := sc.c.RemoteAddr(); ra != nil {
		sc.remote = ra.String()
	}
	sc.ctx = context.WithValue(s.baseCtx, http.LocalAddrContextKey, sc.c.LocalAddr())
	sc.cr.c = sc.c
	sc.unshed()
	sc.bgTimer = time.AfterFunc(time.Hour, sc.bgTimeout)
	sc.bgTimer.Stop()
	handedOff := false
	w := &sc.res
	defer func() {
		if err := recover(); err != nil && err != http.ErrAbortHandler {
			s.std.ErrorLog.Printf("http: panic serving %v: %v", sc.remote, err)
		}
		sc.bgTimer.Stop()
		if w.req != nil { // a handler panicked
			if w.body != nil {
				// Refused before the close below: once the client
				// sees the connection end, no read of the body may
				// still reach the read buffer.
				w.body.refused.Store(true)
			}
			w.cancel()
			sc.abortBackgroundRead()
		}
		s.forget(sc)
		if sc.hijacked {
			return // the buffers went with the connection
		}
		if !handedOff {
			sc.state.Store(connClosed)
			sc.c.Close()
		}
		if w.body != nil {
			// A handler panicked with the body open: a transport may
			// still be reading it. The close above ends a read under way;
			// closing the body waits for it and refuses the next, before
			// the read buffer goes back to the pool for another
			// connection.
			w.body.closeForGood()
		}
		sc.shed()
	}()

	first := true
	for {
		// Wait for the request's first bytes: under the header timeout
		// for the first request, the idle timeout after. Four bytes after
		// the first request, as net/http: a kept-alive connection that ends
		// within them is closed without an answer.
		n, d := 1, s.opts.ReadHeaderTimeout
		if !first {
			n, d = 4, s.opts.IdleTimeout
		}
		if sc.br.Buffered() < n {
			if d > 0 {
				sc.c.SetReadDeadline(time.Now().Add(d))
			} else if !first {
				sc.c.SetReadDeadline(time.Time{})
			}
			if rw, ok := sc.c.(readWaiter); ok && !first && !s.keepBuffers && sc.br.Buffered() == 0 && !sc.cr.hasByte {
				// Idle, with nothing buffered (not even a byte the
				// background read took): wait without the buffers (see
				// shed).
				sc.shed()
				if rw.WaitRead() != nil {
					return
				}
				sc.unshed()
			}
			if _, err := sc.br.Peek(n); err != nil {
				return
			}
		}
		if !first && s.opts.ReadHeaderTimeout > 0 {
			sc.c.SetReadDeadline(time.Now().Add(s.opts.ReadHeaderTimeout))
		}
		if first {
			// A new connection that has sent something is active
			// (net/http gives it up to its header timeout).
			if !sc.state.CompareAndSwap(connIdle, connActive) {
				return
			}
			first = false
			if sc.h2Preface() {
				handedOff = true
				buffered, _ := sc.br.Peek(sc.br.Buffered())
				s.handToStd(sc.c, append([]byte(nil), buffered...))
				return
			}
		}
		req, err := sc.readRequest()
		// As net/http: a kept-alive connection is idle for Shutdown until
		// it has a whole request head, so that a client slow to send it
		// does not hold Shutdown up.
		if !sc.state.CompareAndSwap(connIdle, connActive) && sc.state.Load() != connActive {
			return // closed by Shutdown
		}
		if err != nil {
			sc.replyError(err)
			return
		}
		sc.c.SetReadDeadline(time.Time{}) // the body has no timeout
		w.reset(sc, req)
		w.closeAfterReply = isH2Upgrade(req)
		if req.Header.Get("Expect") != "" {
			if !expectsContinue(req) {
				w.Header().Set("Connection", "close")
				w.WriteHeader(http.StatusExpectationFailed)
				w.finish()
				w.req = nil
				return
			}
			if req.ProtoAtLeast(1, 1) && req.ContentLength != 0 {
				w.body.expect = true
				w.canWriteContinue.Store(true)
			}
		}

		var h http.Handler = s.handler
		if req.RequestURI == "*" && req.Method == http.MethodOptions {
			h = globalOptionsHandler{}
		}
		sc.startHandler(w)
		h.ServeHTTP(w, w.req)
		w.cancel()
		if sc.hijacked {
			w.req = nil
			return
		}
		w.finish()
		reuse := w.shouldReuseConnection()
		limitHit := w.requestBodyLimitHit || w.closedBodyEarly
		w.release()
		if !reuse {
			if limitHit {
				sc.closeWriteAndWait()
			}
			return
		}
		if !sc.state.CompareAndSwap(connActive, connIdle) || s.closing.Load() {
			return
		}
	}
}

// readWaiter is a connection that can wait for something to read without
// reading it (sockio.Conn).
type readWaiter interface{ WaitRead() error }

// shed gives the connection's buffers back to their pools: the read and
// write buffers (4 KiB each), and the response's chunking buffer (2 KiB)
// if it took one. unshed takes new read and write buffers; the response
// takes a chunking buffer when it needs one.
//
// A kept-alive connection with nothing buffered sheds its buffers while
// it waits for its next request, as HAProxy does: a node proxy holds the
// keep-alive connections of every client on its node, most of them idle
// at any moment, so buffer memory goes with the requests in progress, not
// with the connections. It waits with sockio.Conn.WaitRead, which costs
// no system call over a Read that finds nothing and waits; a connection
// whose next request is already there when it looks pays one (a peek).
func (sc *serverConn) shed() {
	if sc.br != nil {
		putReader(sc.br)
		sc.br = nil
	}
	if sc.bw != nil {
		putWriter(&bufWriters, sc.bw)
		sc.bw = nil
	}
	if sc.res.w != nil {
		putWriter(&chunkWriters, sc.res.w)
		sc.res.w = nil
	}
}

func (sc *serverConn) unshed() {
	sc.br = getReader(&sc.cr)
	sc.bw = getWriter(&bufWriters, connWriter{sc})
}

// h2Preface reports whether the connection starts with the HTTP/2 preface,
// reading no further than needed to tell.
func (sc *serverConn) h2Preface() bool {
	for n := 1; ; n++ {
		b, err := sc.br.Peek(n)
		if err != nil {
			return false // ReadRequest will see the error
		}
		if !strings.HasPrefix(h2Preface, string(b)) {
			return false
		}
		if n == len(h2Preface) {
			return true
		}
		if m := sc.br.Buffered(); m > n {
			n = min(m, len(h2Preface)) - 1
		}
	}
}

type statusError struct {
	code int
	text string
}

func (e statusError) Error() string { return http.StatusText(e.code) + ": " + e.text }

var errTooLarge = errors.New("http: request too large")

// readRequest reads the next request head with net/http's parser and
// checks it as net/http's server does.
func (sc *serverConn) readRequest() (*http.Request, error) {
	sc.cr.limited, sc.cr.remain = true, maxHeaderBytes
	if sc.lastMethod == http.MethodPost {
		// RFC 7230 section 3 tolerance for old buggy clients.
		peek, _ := sc.br.Peek(4)
		n := 0
		for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
			n++
		}
		sc.br.Discard(n)
	}
	var abs, hostField bool
	var hostValue string
	req := sc.fast.read(sc.br) // origin form, one Host field
	plain := req != nil        // its names are tokens and its values printable ASCII
	if !plain {
		buffered, _ := sc.br.Peek(sc.br.Buffered())
		abs, hostField, hostValue = absoluteHead(buffered)
		var err error
		req, err = http.ReadRequest(sc.br)
		hit := sc.cr.remain <= 0
		if err != nil {
			sc.cr.limited = false
			if hit {
				return nil, errTooLarge
			}
			return nil, err
		}
	}
	sc.cr.limited = false
	if req.ProtoMajor != 1 && !isH2Upgrade(req) {
		return nil, statusError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
	}
	sc.lastMethod = req.Method
	// ReadRequest has taken the Host header out of req.Header (and refused
	// two), and set req.Host from the URL of an absolute-form request, so
	// the header's absence is seen in req.Host only for origin form; for
	// absolute form absoluteHead looked at the head before. An empty Host
	// header counts as missing here; net/http's server would pass it on.
	if req.ProtoAtLeast(1, 1) && (req.Host == "" || abs && !hostField) && req.Method != http.MethodConnect && !isH2Upgrade(req) {
		return nil, statusError{http.StatusBadRequest, "missing required Host header"}
	}
	if !abs && !httpguts.ValidHostHeader(req.Host) || abs && hostField && !httpguts.ValidHostHeader(hostValue) {
		return nil, statusError{http.StatusBadRequest, "malformed Host header"}
	}
	if !plain { // readFields took only valid fields
		if err := checkFields(req.Header); err != nil {
			return nil, err
		}
	}
	req.RemoteAddr = sc.remote
	return req, nil
}

// checkFields refuses a header with an invalid name or value, as net/http's
// server does.
func checkFields(h http.Header) error {
	for k, vv := range h {
		if !httpguts.ValidHeaderFieldName(k) {
			return statusError{http.StatusBadRequest, "invalid header name"}
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return statusError{http.StatusBadRequest, "invalid header value"}
			}
		}
	}
	return nil
}

// replyError answers a request that could not be read, as net/http does.
func (sc *serverConn) replyError(err error) {
	const errorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	var se statusError
	switch {
	case err == errTooLarge:
		const publicErr = "431 Request Header Fields Too Large"
		io.WriteString(sc.c, "HTTP/1.1 "+publicErr+errorHeaders+publicErr)
		sc.closeWriteAndWait()
	case strings.HasPrefix(err.Error(), "unsupported transfer encoding"):
		// ReadRequest's unsupportedTEError, which is not exported.
		code := http.StatusNotImplemented
		fmt.Fprintf(sc.c, "HTTP/1.1 %d %s%sUnsupported transfer encoding", code, http.StatusText(code), errorHeaders)
	case isCommonNetReadError(err):
	case errors.As(err, &se):
		fmt.Fprintf(sc.c, "HTTP/1.1 %d %s: %s%s%d %s: %s", se.code, http.StatusText(se.code), se.text, errorHeaders, se.code, http.StatusText(se.code), se.text)
	default:
		const publicErr = "400 Bad Request"
		io.WriteString(sc.c, "HTTP/1.1 "+publicErr+errorHeaders+publicErr)
	}
}

func isCommonNetReadError(err error) bool {
	if err == io.EOF {
		return true
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return true
	}
	if oe, ok := err.(*net.OpError); ok && oe.Op == "read" {
		return true
	}
	return false
}

// rstAvoidanceDelay is how long closeWriteAndWait lets the client read
// the response before the close (net/http's figure).
const rstAvoidanceDelay = 500 * time.Millisecond

// closeWriteAndWait flushes, half-closes, and waits before the close, so
// that a client still sending does not get a reset before it has read
// the response (net/http's closeWriteAndWait).
func (sc *serverConn) closeWriteAndWait() {
	sc.bw.Flush()
	if cw, ok := sc.c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	time.Sleep(rstAvoidanceDelay)
}

// absoluteHead reports whether the request head at the start of b has an
// absolute-form or authority-form target (not "/..." or "*"), whose URL
// gives req.Host, and if so whether it has a Host field, and that field's
// value (the first, trimmed). A head not wholly in b (over the 4 KiB read
// buffer, or not all come yet) is taken to have a valid one.
func absoluteHead(b []byte) (abs, host bool, value string) {
	line, rest, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		return false, false, ""
	}
	_, target, _ := bytes.Cut(line, []byte(" "))
	target, _, _ = bytes.Cut(target, []byte(" "))
	if len(target) == 0 || target[0] == '/' || string(target) == "*" {
		return false, false, ""
	}
	for len(rest) > 0 {
		line, rest, ok = bytes.Cut(rest, []byte("\n"))
		if !ok {
			return true, true, "" // the head goes on past b
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			return true, false, ""
		}
		if name, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(name, []byte("Host")) {
			return true, true, string(bytes.Trim(v, " \t"))
		}
	}
	return true, true, ""
}

// isH2Upgrade reports whether req is the HTTP/2 preface's first line, which
// net/http's server passes to the handler (the preface itself was handed to
// the HTTP/2 server); the connection closes after.
func isH2Upgrade(req *http.Request) bool {
	return req.ProtoMajor == 2 && req.ProtoMinor == 0 && req.Method == "PRI" && req.RequestURI == "*"
}

func expectsContinue(r *http.Request) bool {
	return httpguts.HeaderValuesContainsToken(r.Header["Expect"], "100-continue")
}

// startHandler arms the background read for a handler about to run.
func (sc *serverConn) startHandler(w *response) {
	sc.mu.Lock()
	sc.inHandler = w.body == nil
	sc.timedOut = false
	sc.cancelReq = w.cancel
	sc.mu.Unlock()
	sc.bgTimer.Reset(bgReadDelay)
}

// bodyDone is called when the handler has read the request body to its
// end.
func (sc *serverConn) bodyDone() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.cancelReq == nil || sc.hijacked {
		return
	}
	sc.inHandler = true
	if sc.timedOut {
		sc.startBackgroundReadLocked()
	}
}

func (sc *serverConn) bgTimeout() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.timedOut = true
	if sc.inHandler && !sc.hijacked {
		sc.startBackgroundReadLocked()
	}
}

func (sc *serverConn) startBackgroundReadLocked() {
	if sc.bgActive || sc.cr.hasByte {
		return
	}
	sc.bgActive = true
	sc.bgDone = make(chan struct{})
	go sc.backgroundRead(sc.bgDone)
}

// backgroundRead reads one byte: the client's next pipelined request, or
// its hang-up, which cancels the request in flight (net/http's).
func (sc *serverConn) backgroundRead(done chan struct{}) {
	n, err := sc.c.Read(sc.cr.byteBuf[:])
	sc.mu.Lock()
	if n == 1 {
		sc.cr.hasByte = true
	}
	if ne, ok := err.(net.Error); ok && sc.aborting && ne.Timeout() {
		// the expected error of abortBackgroundRead
	} else if err != nil && sc.cancelReq != nil {
		sc.cancelReq()
	}
	sc.bgActive = false
	sc.mu.Unlock()
	close(done)
}

// abortBackgroundRead stops the background read, if any, and waits for
// it; after it the handler's request is over for the connection.
func (sc *serverConn) abortBackgroundRead() {
	sc.bgTimer.Stop()
	sc.mu.Lock()
	sc.inHandler = false
	sc.cancelReq = nil
	active, done := sc.bgActive, sc.bgDone
	if active {
		sc.aborting = true
		sc.c.SetReadDeadline(expired)
	}
	sc.mu.Unlock()
	if active {
		<-done
		sc.mu.Lock()
		sc.aborting = false
		sc.mu.Unlock()
		sc.c.SetReadDeadline(time.Time{})
	}
}

// globalOptionsHandler answers "OPTIONS *", as net/http's server does.
type globalOptionsHandler struct{}

func (globalOptionsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "0")
	if r.ContentLength != 0 {
		mb := http.MaxBytesReader(w, r.Body, 4<<10)
		io.Copy(io.Discard, mb)
	}
}
