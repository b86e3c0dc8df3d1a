package httpproxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// response is the ResponseWriter of serverConn: net/http's response and
// chunkWriter, ported. A connection reuses one for its requests.
//
// The writers are wired as net/http's: response -> w, a bufio.Writer of
// bufferBeforeChunking bytes -> chunkWriter, which writes the head and
// the chunk framing -> the connection's bufio.Writer. Two short cuts:
// the head is written at WriteHeader when nothing after it can change it
// (a Content-Length and a Content-Type set, and no request body left), so
// the header needs no snapshot; and once the head is out and the body is
// not chunked, writes go straight to the connection's buffer.
type response struct {
	sc     *serverConn
	req    *http.Request
	body   *requestBody // nil for a request without body
	cancel context.CancelFunc
	hdr    http.Header
	snap   http.Header // the header as at WriteHeader, when not written then
	w      *bufio.Writer
	cw     chunkWriter

	status              int
	wroteHeader         bool // a final status was (logically) written
	calledHeader        bool
	handlerDone         atomic.Bool
	contentLength       int64
	written             int64
	wants10KeepAlive    bool
	wantsClose          bool
	closeAfterReply     bool
	requestBodyLimitHit bool
	closedBodyEarly     bool
	fullDuplex          bool
	trailers            []string

	canWriteContinue atomic.Bool
	writeContinueMu  sync.Mutex

	dateBuf   [len(http.TimeFormat)]byte
	clenBuf   [20]byte
	statusBuf [3]byte
}

// bufferBeforeChunking is net/http's bufferBeforeChunkingSize: at least
// the 512 bytes DetectContentType looks at.
const bufferBeforeChunking = 2048

func (w *response) reset(sc *serverConn, req *http.Request) {
	hdr, trailers, ww := w.hdr, w.trailers[:0], w.w
	if hdr == nil {
		hdr = make(http.Header)
	}
	*w = response{sc: sc, hdr: hdr, trailers: trailers, w: ww, contentLength: -1}
	w.cw.res = w
	ctx, cancel := context.WithCancel(sc.ctx)
	// WithContext's copy does not escape here: one Request per request.
	*req = *req.WithContext(ctx)
	w.req, w.cancel = req, cancel
	if req.Body != http.NoBody && req.Body != nil {
		// Its own, not the connection's: a transport may still read
		// it after the handler, and must get ErrBodyReadAfterClose.
		w.body = &requestBody{rc: req.Body, res: w}
		req.Body = w.body
	}
	conn := req.Header.Get("Connection")
	w.wants10KeepAlive = req.ProtoMajor == 1 && req.ProtoMinor == 0 && hasToken(conn, "keep-alive")
	w.wantsClose = req.Close || hasToken(conn, "close")
}

// release readies w for the connection's next request.
func (w *response) release() {
	clear(w.hdr)
	clear(w.trailers)
	w.req, w.body, w.snap = nil, nil, nil
}

// hasToken is net/http's: whether the lower-case token appears in v, in
// any case, bounded by space, tab or comma (not only by commas, as
// httpguts' list rule would have it).
func hasToken(v, token string) bool {
	if len(token) > len(v) || token == "" {
		return false
	}
	if v == token {
		return true
	}
	for sp := 0; sp <= len(v)-len(token); sp++ {
		if b := v[sp]; b != token[0] && b|0x20 != token[0] {
			continue
		}
		if sp > 0 && !isTokenBoundary(v[sp-1]) {
			continue
		}
		if end := sp + len(token); end != len(v) && !isTokenBoundary(v[end]) {
			continue
		}
		if strings.EqualFold(v[sp:sp+len(token)], token) {
			return true
		}
	}
	return false
}

func isTokenBoundary(b byte) bool { return b == ' ' || b == ',' || b == '\t' }

func (w *response) Header() http.Header {
	if w.snap == nil && w.wroteHeader && !w.cw.wroteHeader {
		// After WriteHeader the handler's changes go to the trailers
		// only (net/http).
		w.snap = w.hdr.Clone()
	}
	w.calledHeader = true
	return w.hdr
}

func (w *response) WriteHeader(code int) {
	if w.sc.hijacked || w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 101 || code > 199 {
		w.disableWriteContinue()
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		bw := w.sc.bw
		writeStatusLine(bw, w.req.ProtoAtLeast(1, 1), code, w.statusBuf[:])
		writeHeaderFields(bw, w.hdr, excludedHeadersNoBody)
		bw.WriteString("\r\n")
		bw.Flush()
		return
	}
	w.wroteHeader = true
	w.status = code
	badCL := false
	if cl := hget(w.hdr, "Content-Length"); cl != "" {
		v, err := strconv.ParseInt(cl, 10, 64)
		if err == nil && v >= 0 {
			w.contentLength = v
		} else {
			badCL = true
		}
	}
	final := w.headFinal()
	if !final && w.calledHeader {
		w.snap = w.hdr.Clone() // before the bad length goes, as net/http's
	}
	if badCL {
		w.hdr.Del("Content-Length")
	}
	if final {
		w.cw.writeHeader(nil)
	}
}

// headFinal reports whether the head can be written at WriteHeader: as
// net/http would write it later, whatever the handler writes or changes.
func (w *response) headFinal() bool {
	h := w.hdr
	if w.body != nil && !w.body.sawEOF.Load() {
		return false // the head's writing may read the rest of the body
	}
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return false
		}
	}
	if _, ok := h["Trailer"]; ok {
		return false
	}
	if !bodyAllowedForStatus(w.status) {
		return true
	}
	_, haveType := h["Content-Type"]
	return w.contentLength != -1 && (haveType || hget(h, "Content-Encoding") != "" || hget(h, "Transfer-Encoding") != "")
}

var excludedHeadersNoBody = map[string]bool{"Content-Length": true, "Transfer-Encoding": true}

func (w *response) disableWriteContinue() {
	w.writeContinueMu.Lock()
	w.canWriteContinue.Store(false)
	w.writeContinueMu.Unlock()
}

func (w *response) Write(p []byte) (int, error) {
	return w.write(len(p), p, "")
}

func (w *response) WriteString(s string) (int, error) {
	return w.write(len(s), nil, s)
}

func (w *response) write(n int, b []byte, s string) (int, error) {
	if w.sc.hijacked {
		return 0, http.ErrHijacked
	}
	if w.canWriteContinue.Load() {
		w.disableWriteContinue()
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if n == 0 {
		return 0, nil
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(n)
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if w.cw.wroteHeader && !w.cw.chunking && (w.w == nil || w.w.Buffered() == 0) {
		// The head is out and the body needs no framing.
		if w.req.Method == http.MethodHead {
			return n, nil
		}
		if b != nil {
			return w.sc.bw.Write(b)
		}
		return w.sc.bw.WriteString(s)
	}
	if w.w == nil {
		w.w = getWriter(&chunkWriters, &w.cw)
	}
	if b != nil {
		return w.w.Write(b)
	}
	return w.w.WriteString(s)
}

// finish ends the response once the handler has returned
// (net/http's finishRequest).
func (w *response) finish() {
	w.handlerDone.Store(true)
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.w != nil {
		w.w.Flush()
	}
	w.cw.close()
	w.sc.bw.Flush()
	w.sc.abortBackgroundRead()
	if w.body != nil {
		w.body.finish()
	}
}

func (w *response) shouldReuseConnection() bool {
	if w.closeAfterReply {
		return false
	}
	if w.req.Method != http.MethodHead && w.contentLength != -1 && bodyAllowedForStatus(w.status) && w.contentLength != w.written {
		return false // did not write enough: the client would get out of step
	}
	if w.sc.werr != nil || w.closedBodyEarly {
		return false
	}
	return true
}

func (w *response) Flush() { _ = w.FlushError() }

func (w *response) FlushError() error {
	if w.sc.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	var err error
	if w.w != nil {
		err = w.w.Flush()
	}
	if e := w.cw.flush(); err == nil {
		err = e
	}
	return err
}

// Hijack hands the connection over, with what was read from it and not
// yet consumed.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.handlerDone.Load() {
		panic("httpproxy: Hijack called after ServeHTTP finished")
	}
	sc := w.sc
	if sc.hijacked {
		return nil, nil, http.ErrHijacked
	}
	w.disableWriteContinue()
	if w.wroteHeader {
		w.cw.flush()
	}
	sc.abortBackgroundRead()
	sc.mu.Lock()
	sc.hijacked = true
	sc.mu.Unlock()
	sc.c.SetDeadline(time.Time{})
	if sc.cr.hasByte {
		if _, err := sc.br.Peek(sc.br.Buffered() + 1); err != nil {
			return nil, nil, fmt.Errorf("unexpected Peek failure reading buffered byte: %v", err)
		}
	}
	sc.bw.Reset(sc.c)
	return sc.c, bufio.NewReadWriter(sc.br, sc.bw), nil
}

// CloseNotify is the deprecated http.CloseNotifier, for middleware that
// still asks: the channel gets true when the request's context ends,
// which happens when the client goes away (see bgReadDelay) or the
// handler returns.
func (w *response) CloseNotify() <-chan bool {
	ch := make(chan bool, 1)
	context.AfterFunc(w.req.Context(), func() { ch <- true })
	return ch
}

// SetReadDeadline, SetWriteDeadline and EnableFullDuplex are for
// http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error  { return w.sc.c.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.sc.c.SetWriteDeadline(t) }
func (w *response) EnableFullDuplex() error {
	w.fullDuplex = true
	return nil
}

func (w *response) declareTrailer(k string) {
	k = http.CanonicalHeaderKey(k)
	if !httpguts.ValidTrailerHeader(k) {
		return
	}
	w.trailers = append(w.trailers, k)
}

func (w *response) finalTrailers() http.Header {
	var t http.Header
	for k, vv := range w.hdr {
		if kk, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			if t == nil {
				t = make(http.Header)
			}
			t[kk] = vv
		}
	}
	for _, k := range w.trailers {
		if t == nil {
			t = make(http.Header)
		}
		for _, v := range w.hdr[k] {
			t.Add(k, v)
		}
	}
	return t
}

func (w *response) requestTooLarge() {
	w.closeAfterReply = true
	w.requestBodyLimitHit = true
}

// chunkWriter writes the head, then the body with chunk framing when
// chunking (net/http's).
type chunkWriter struct {
	res         *response
	wroteHeader bool
	chunking    bool
}

func (cw *chunkWriter) Write(p []byte) (int, error) {
	if !cw.wroteHeader {
		cw.writeHeader(p)
	}
	if cw.res.req.Method == http.MethodHead {
		return len(p), nil
	}
	bw := cw.res.sc.bw
	if cw.chunking {
		bw.Write(strconv.AppendInt(cw.res.clenBuf[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if cw.chunking && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		cw.res.sc.c.Close()
	}
	return n, err
}

func (cw *chunkWriter) flush() error {
	if !cw.wroteHeader {
		cw.writeHeader(nil)
	}
	return cw.res.sc.bw.Flush()
}

func (cw *chunkWriter) close() {
	if !cw.wroteHeader {
		cw.writeHeader(nil)
	}
	if cw.chunking {
		bw := cw.res.sc.bw
		bw.WriteString("0\r\n")
		if t := cw.res.finalTrailers(); t != nil {
			t.Write(bw)
		}
		bw.WriteString("\r\n")
	}
}

// extraHeader is the set of headers writeHeader adds, written after the
// handler's in this order (net/http's).
type extraHeader struct {
	contentType      string
	connection       string
	transferEncoding string
	date             []byte
	contentLength    []byte
}

func (h *extraHeader) write(w *bufio.Writer) {
	if h.date != nil {
		w.WriteString("Date: ")
		w.Write(h.date)
		w.WriteString("\r\n")
	}
	if h.contentLength != nil {
		w.WriteString("Content-Length: ")
		w.Write(h.contentLength)
		w.WriteString("\r\n")
	}
	if h.contentType != "" {
		w.WriteString("Content-Type: " + h.contentType + "\r\n")
	}
	if h.connection != "" {
		w.WriteString("Connection: ")
		w.WriteString(h.connection)
		w.WriteString("\r\n")
	}
	if h.transferEncoding != "" {
		w.WriteString("Transfer-Encoding: ")
		w.WriteString(h.transferEncoding)
		w.WriteString("\r\n")
	}
}

// writeHeader decides the response's framing and writes its head: net/http's
// chunkWriter.writeHeader. p is the first chunk of the body, sniffed for a
// Content-Type when none is set, and the whole body when the handler is
// done.
func (cw *chunkWriter) writeHeader(p []byte) {
	if cw.wroteHeader {
		return
	}
	cw.wroteHeader = true
	w := cw.res
	keepAlives := !w.sc.s.closing.Load()
	isHEAD := w.req.Method == http.MethodHead

	header := w.snap
	owned := header != nil
	if !owned {
		header = w.hdr
	}
	var exclude map[string]bool
	delHeader := func(key string) {
		if owned {
			header.Del(key)
			return
		}
		if _, ok := header[key]; !ok {
			return
		}
		if exclude == nil {
			exclude = make(map[string]bool)
		}
		exclude[key] = true
	}
	var set extraHeader

	// Don't write out the "Trailer:foo" keys; see http.TrailerPrefix.
	trailers := false
	for k := range w.snap {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			if exclude == nil {
				exclude = make(map[string]bool)
			}
			exclude[k] = true
			trailers = true
		}
	}
	for _, v := range w.snap["Trailer"] {
		trailers = true
		foreachHeaderElement(v, w.declareTrailer)
	}

	te := hget(header, "Transfer-Encoding")
	hasTE := te != ""

	// The handler is done and this is the whole body: say its length.
	_, hasCLKey := header["Content-Length"]
	if w.handlerDone.Load() && !trailers && !hasTE && bodyAllowedForStatus(w.status) && !hasCLKey && (!isHEAD || len(p) > 0) {
		w.contentLength = int64(len(p))
		set.contentLength = strconv.AppendInt(w.clenBuf[:0], int64(len(p)), 10)
	}

	if w.wants10KeepAlive && keepAlives {
		if hget(header, "Content-Length") != "" && hget(header, "Connection") == "keep-alive" {
			w.closeAfterReply = false
		}
	}
	hasCL := w.contentLength != -1
	if w.wants10KeepAlive && (isHEAD || hasCL || !bodyAllowedForStatus(w.status)) {
		if _, ok := header["Connection"]; !ok {
			set.connection = "keep-alive"
		}
	} else if !w.req.ProtoAtLeast(1, 1) || w.wantsClose {
		w.closeAfterReply = true
	}
	if hget(header, "Connection") == "close" || !keepAlives {
		w.closeAfterReply = true
	}
	// A 100-continue never answered, or a body not read to its end:
	// drop the connection rather than read what the client sends.
	if w.body != nil && w.body.expect && !w.body.sawEOF.Load() {
		w.closeAfterReply = true
	}
	// Read the rest of a body the handler left, within a bound, so that
	// a client that sends its whole request before reading does not
	// deadlock (net/http).
	if w.req.ContentLength != 0 && !w.closeAfterReply && !w.fullDuplex && w.body != nil && !w.body.expect {
		switch w.body.discardRest() {
		case discardTooBig:
			w.requestTooLarge()
			delHeader("Connection")
			set.connection = "close"
		case discardFailed:
			w.closeAfterReply = true
		}
	}

	code := w.status
	if bodyAllowedForStatus(code) {
		_, haveType := header["Content-Type"]
		hasCE := hget(header, "Content-Encoding") != ""
		if !hasCE && !haveType && !hasTE && len(p) > 0 {
			set.contentType = http.DetectContentType(p)
		}
	} else {
		for _, k := range suppressedHeaders(code) {
			delHeader(k)
		}
	}
	if _, ok := header["Date"]; !ok {
		set.date = time.Now().UTC().AppendFormat(w.dateBuf[:0], http.TimeFormat)
	}
	if hasCL && hasTE && te != "identity" {
		delHeader("Content-Length")
		hasCL = false
	}
	switch {
	case isHEAD || !bodyAllowedForStatus(code) || code == http.StatusNoContent:
		delHeader("Transfer-Encoding")
	case hasCL:
		delHeader("Transfer-Encoding")
	case w.req.ProtoAtLeast(1, 1):
		if hasTE && te == "identity" {
			cw.chunking = false
			w.closeAfterReply = true
			delHeader("Transfer-Encoding")
		} else {
			cw.chunking = true
			set.transferEncoding = "chunked"
			if hasTE && te == "chunked" {
				delHeader("Transfer-Encoding")
			}
		}
	default:
		// HTTP/1.0 without a length: the close ends the body.
		w.closeAfterReply = true
		delHeader("Transfer-Encoding")
	}
	if cw.chunking {
		delHeader("Content-Length")
	}
	if !w.req.ProtoAtLeast(1, 0) {
		return
	}
	if w.closeAfterReply && (!keepAlives || !hasToken(hget(header, "Connection"), "close")) && !isProtocolSwitch(w.status, header) {
		delHeader("Connection")
		if w.req.ProtoAtLeast(1, 1) {
			set.connection = "close"
		}
	}
	bw := w.sc.bw
	writeStatusLine(bw, w.req.ProtoAtLeast(1, 1), code, w.statusBuf[:])
	writeHeaderFields(bw, header, exclude)
	set.write(bw)
	bw.WriteString("\r\n")
}

// hget is http.Header.Get for a name already in canonical form, without
// canonicalising it again on every call.
func hget(h http.Header, canonicalKey string) string {
	if v := h[canonicalKey]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// writeHeaderFields writes h less exclude in wire format, byte for byte as
// http.Header.WriteSubset does: names sorted, invalid names dropped, CR and
// LF in a value turned into spaces, values trimmed. WriteSubset's general
// path (a pooled sorter, a sort through a comparison function and a
// strings.Replacer call for every value) was about half of the time the
// server spent writing a response head at 2,000 req/s (perf, 2026-12-06).
func writeHeaderFields(bw *bufio.Writer, h http.Header, exclude map[string]bool) {
	var small [16]string
	keys := small[:0]
	for k := range h {
		if !exclude[k] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range h[k] {
			writeField(bw, k, v) // cleanValue is WriteSubset's value cleaning
		}
	}
}

// headerNewlineToSpace is net/http's; cleanValue uses it.
var headerNewlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

func isProtocolSwitch(code int, h http.Header) bool {
	return code == http.StatusSwitchingProtocols && hget(h, "Upgrade") != "" &&
		httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade")
}

func writeStatusLine(bw *bufio.Writer, is11 bool, code int, scratch []byte) {
	if is11 {
		bw.WriteString("HTTP/1.1 ")
	} else {
		bw.WriteString("HTTP/1.0 ")
	}
	if text := http.StatusText(code); text != "" {
		bw.Write(strconv.AppendInt(scratch[:0], int64(code), 10))
		bw.WriteByte(' ')
		bw.WriteString(text)
		bw.WriteString("\r\n")
	} else {
		fmt.Fprintf(bw, "%03d status code %d\r\n", code, code)
	}
}

func bodyAllowedForStatus(status int) bool {
	switch {
	case status >= 100 && status <= 199:
		return false
	case status == 204, status == 304:
		return false
	}
	return true
}

var (
	suppressedHeaders304    = []string{"Content-Type", "Content-Length", "Transfer-Encoding"}
	suppressedHeadersNoBody = []string{"Content-Length", "Transfer-Encoding"}
)

func suppressedHeaders(status int) []string {
	switch {
	case status == 304:
		return suppressedHeaders304
	case !bodyAllowedForStatus(status):
		return suppressedHeadersNoBody
	}
	return nil
}

// foreachHeaderElement calls fn for each non-empty element of the list v.
func foreachHeaderElement(v string, fn func(string)) {
	v = strings.Trim(v, " \t")
	if v == "" {
		return
	}
	for f := range strings.SplitSeq(v, ",") {
		if f = strings.Trim(f, " \t"); f != "" {
			fn(f)
		}
	}
}

// requestBody is the request's body as the handler sees it: it sends 100
// Continue on the first read when asked to, notes the end, and is never
// drained without bound (net/http's expectContinueReader, and its body's
// early close, which ReadRequest's body cannot be told to do).
type requestBody struct {
	rc     io.ReadCloser
	res    *response
	expect bool

	mu     sync.Mutex
	sawEOF atomic.Bool
	closed bool
	n      int64 // bytes read

	// refused is set, without the lock, before the connection closes
	// under a handler that panicked: closeForGood must wait for a read
	// under way, which only that close ends, and a read starting in
	// between must fail as it would after closeForGood.
	refused atomic.Bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.refused.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.refused.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.readLocked(p)
}

func (b *requestBody) readLocked(p []byte) (int, error) {
	if w := b.res; b.expect && w.canWriteContinue.Load() {
		w.writeContinueMu.Lock()
		if w.canWriteContinue.Load() {
			w.sc.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			w.sc.bw.Flush()
			w.canWriteContinue.Store(false)
		}
		w.writeContinueMu.Unlock()
	}
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if err == io.EOF && !b.sawEOF.Swap(true) {
		b.res.sc.bodyDone()
	}
	return n, err
}

// Close reads what is left of the body within the bound, so that the
// connection can serve the next request, and ends it.
func (b *requestBody) Close() error {
	b.finish()
	return nil
}

type discardResult int

const (
	discardDone discardResult = iota
	discardTooBig
	discardFailed
)

// discardRest reads and drops what the handler left of the body, up to
// maxPostHandlerReadBytes.
func (b *requestBody) discardRest() discardResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.sawEOF.Load():
		return discardDone
	case b.closed && !b.res.closedBodyEarly:
		return discardDone // closed with nothing left (Close reads to the end)
	case b.closed:
		return discardFailed
	case b.res.req.ContentLength > 0 && b.res.req.ContentLength-b.n >= maxPostHandlerReadBytes:
		return discardTooBig
	}
	_, err := io.CopyN(io.Discard, readerFunc(b.readLocked), maxPostHandlerReadBytes+1)
	switch err {
	case nil:
		return discardTooBig
	case io.EOF:
		return discardDone
	}
	return discardFailed
}

// finish ends the body after the handler: the rest is read within the
// bound, or the connection is not reused (net/http's early close).
func (b *requestBody) finish() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	done := b.sawEOF.Load()
	remaining := b.res.req.ContentLength - b.n
	b.mu.Unlock()
	if done || b.res.closeAfterReply {
		b.closeForGood()
		return
	}
	// After a read error the body itself says what is left: net/http's
	// body counts a short Content-Length body as ended (its next read
	// is io.EOF), a broken chunked one as closed.
	if b.res.req.ContentLength > 0 && remaining > maxPostHandlerReadBytes {
		b.res.closedBodyEarly = true
		b.closeForGood()
		return
	}
	b.mu.Lock()
	n, err := io.CopyN(io.Discard, readerFunc(b.readLocked), maxPostHandlerReadBytes)
	b.mu.Unlock()
	if err != io.EOF && (err != nil || n == maxPostHandlerReadBytes) {
		b.res.closedBodyEarly = true
	}
	b.closeForGood()
}

func (b *requestBody) closeForGood() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
