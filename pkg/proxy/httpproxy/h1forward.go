package httpproxy

import (
	"bufio"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vulcand/oxy/v2/forward"
	"golang.org/x/net/http/httpguts"
)

// h1Forwarder is the forwarder of scheme http. The plain requests that make
// up most mesh traffic (a GET or HEAD without body, hop-by-hop headers or
// Expect, see plain) it forwards itself over h1Transport's connections;
// everything else goes to oxy's forwarder (rp), unchanged.
//
// For those requests it does what oxy's forwarder (an
// httputil.ReverseProxy with oxy's Director) and net/http's Request.Write
// would, byte for byte on the wire (TestH1ForwarderMatchesOxy), without
// their per-request work: no clone of the request, its URL and header map,
// no X-Forwarded-* header values allocated into that map, no client trace
// in the context, no re-parse of the request URI, and the request head is
// written straight into the connection's buffer. The response is handled
// as httputil's: hop-by-hop headers dropped, headers and trailers copied,
// the body copied with the shared buffer pool, flushed as it comes when
// its length is unknown or it is an event stream.
type h1Forwarder struct {
	rp       *httputil.ReverseProxy // oxy's forwarder, on t
	t        *h1Transport
	pool     *bufferPool
	hostname string // X-Forwarded-Server, as oxy's HeaderRewriter has it
}

func newH1Forwarder(rp *httputil.ReverseProxy, t *h1Transport, pool *bufferPool) *h1Forwarder {
	// oxy's forward.NewHeaderRewriter takes the host name the same way.
	h, err := os.Hostname()
	if err != nil {
		h = "localhost"
	}
	return &h1Forwarder{rp: rp, t: t, pool: pool, hostname: h}
}

// hopHeaders are the request headers whose presence sends a request to
// oxy's forwarder, which removes or rewrites them (httputil's list, plus
// Expect, which h1Transport does not take).
var hopHeaders = [...]string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Expect",
}

// plain reports whether f forwards req itself. req is the round robin's
// copy of the client's request, with the endpoint's URL.
func (f *h1Forwarder) plain(req *http.Request) bool {
	if f.rp.Transport != f.t || req.URL.Scheme != "http" ||
		(req.Method != http.MethodGet && req.Method != http.MethodHead) ||
		req.ContentLength != 0 || len(req.TransferEncoding) != 0 || len(req.Trailer) != 0 ||
		req.Form != nil || !cancelable(req.Context()) ||
		!plainHost(req.Host) || !plainRequestURI(req.RequestURI) {
		return false
	}
	for _, k := range hopHeaders {
		if _, ok := req.Header[k]; ok {
			return false
		}
	}
	return true
}

// cancelable reports whether ctx can end. httputil watches a
// CloseNotifier for a request whose context cannot; those go to it. A
// server's request context always can, and asking its Done would allocate
// the channel only for this question (it is made lazily), so the server's
// mark is checked first.
func cancelable(ctx context.Context) bool {
	return ctx.Value(http.ServerContextKey) != nil || ctx.Done() != nil
}

// plainHost reports whether h is a Host that net/http writes as it is: not
// empty, ASCII letters, digits and the punctuation of names, IPv4 and
// bracketed IPv6 addresses and ports (no zone, nothing to punycode).
func plainHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

// plainRequestURI reports whether oxy's forwarder sends s on unchanged: it
// parses s with url.ParseRequestURI and writes the URL's RequestURI(), which
// gives s back when the path needs no escaping and is not re-escaped (no
// '%', '#', space, control or non-ASCII byte), s is in origin form, and
// does not end in '?' (oxy drops an empty query's '?').
func plainRequestURI(s string) bool {
	if len(s) == 0 || s[0] != '/' || s[len(s)-1] == '?' {
		return false
	}
	path := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c <= ' ' || c >= 0x7f || c == '#':
			return false
		case c == '?':
			path = false
		case path && !pathByte(c):
			return false
		}
	}
	return true
}

// pathByte reports whether c stays as it is in url.URL.EscapedPath.
func pathByte(c byte) bool {
	if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
		return true
	}
	return strings.IndexByte("-_.~$&+,/:;=@!'()*", c) >= 0
}

// ServeHTTP forwards req to the endpoint in req.URL.
func (f *h1Forwarder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if !f.plain(req) {
		f.rp.ServeHTTP(w, req)
		return
	}
	h := getReqHead()
	// Not before the answer is done with: h holds it (reqHead).
	defer putReqHead(h)
	f.head(h, req)
	res, err := f.t.send(req, h)
	if err != nil {
		f.rp.ErrorHandler(w, req, err)
		return
	}
	removeHopByHop(res.Header)
	dst := w.Header()
	for k, vv := range res.Header {
		if old, ok := dst[k]; ok {
			dst[k] = append(old, vv...)
		} else {
			dst[k] = vv // the response is ours alone; its slices are capped
		}
	}
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, len(res.Trailer))
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		dst.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(res.StatusCode)
	if err := f.copyBody(w, res); err != nil {
		defer res.Body.Close()
		// httputil's rule: under a server, abort the client's response.
		if req.Context().Value(http.ServerContextKey) != nil {
			panic(http.ErrAbortHandler)
		}
		return
	}
	res.Body.Close()
	if len(res.Trailer) == 0 && res.ContentLength >= 0 && req.Method == http.MethodGet && req.ProtoMajor == 1 {
		// The whole answer is written and its length was given: send it
		// now, not when the server's writer is finished after the
		// handlers up the chain return (metrics, the request's context),
		// so that their work is not on the client's wait. The server has
		// nothing left to write for it then, so this costs no system call.
		// Under oxy's retry buffer, which holds the answer until it decides
		// on another attempt, there is nothing to flush through: its
		// writer can neither flush nor unwrap. Not for an HTTP/2 (h2c)
		// client: there a flush sends the data without the stream's end,
		// which would then take a frame of its own.
		flushNow(w)
	}
	if len(res.Trailer) > 0 {
		flushNow(w) // force chunking
	}
	if len(res.Trailer) == announced {
		for k, vv := range res.Trailer {
			for _, v := range vv {
				dst.Add(k, v)
			}
		}
		return
	}
	for k, vv := range res.Trailer {
		k = http.TrailerPrefix + k
		for _, v := range vv {
			dst.Add(k, v)
		}
	}
}

// flushNow flushes w as http.ResponseController.Flush does, through the
// writers that wrap it, but does nothing when none of them can flush,
// where the controller would allocate an error to say so.
func flushNow(w http.ResponseWriter) {
	for {
		switch t := w.(type) {
		case interface{ FlushError() error }:
			_ = t.FlushError()
			return
		case http.Flusher:
			t.Flush()
			return
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return
		}
	}
}

// copyBody copies the response body as httputil's copyResponse does with a
// FlushInterval of 0: straight, but flushing after every write when the
// length is unknown or the body is an event stream.
func (f *h1Forwarder) copyBody(w http.ResponseWriter, res *http.Response) error {
	var dst io.Writer = w
	if res.ContentLength == -1 || eventStream(res.Header.Get("Content-Type")) {
		fw := &flushWriter{w: w, flush: http.NewResponseController(w).Flush}
		defer fw.stop()
		// As httputil: the head is flushed at once even when the body is
		// slow to come, but from a timer, so that a body already there
		// usually goes out with it.
		fw.pending = true
		fw.t = time.AfterFunc(0, fw.delayedFlush)
		dst = fw
	}
	buf := f.pool.Get()
	defer f.pool.Put(buf)
	for {
		nr, rerr := res.Body.Read(buf)
		if rerr != nil && rerr != io.EOF && rerr != context.Canceled {
			if f.rp.ErrorLog != nil {
				f.rp.ErrorLog.Printf("httputil: ReverseProxy read error during body copy: %v", rerr)
			} else {
				log.Printf("httputil: ReverseProxy read error during body copy: %v", rerr)
			}
		}
		if nr > 0 {
			nw, werr := dst.Write(buf[:nr])
			if werr != nil {
				return werr
			}
			if nr != nw {
				return io.ErrShortWrite
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				rerr = nil
			}
			return rerr
		}
	}
}

// eventStream reports whether a Content-Type is text/event-stream, which
// httputil flushes as it comes. It decides as httputil's
// mime.ParseMediaType does (the part before any ';', trimmed, in any case),
// without that call's two allocations per response: the media type
// lowered, and the parameters' map.
func eventStream(ct string) bool {
	const want = "text/event-stream"
	base, _, _ := strings.Cut(ct, ";")
	base = strings.TrimSpace(base)
	if len(base) != len(want) {
		return false
	}
	for i := 0; i < len(want); i++ {
		c := base[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != want[i] {
			return false
		}
	}
	return true
}

// flushWriter is httputil's maxLatencyWriter with a negative latency:
// every write is flushed.
type flushWriter struct {
	mu      sync.Mutex
	w       io.Writer
	flush   func() error
	t       *time.Timer
	pending bool
}

func (fw *flushWriter) Write(p []byte) (int, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	n, err := fw.w.Write(p)
	_ = fw.flush()
	return n, err
}

func (fw *flushWriter) delayedFlush() {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if !fw.pending {
		return
	}
	_ = fw.flush()
	fw.pending = false
}

func (fw *flushWriter) stop() {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	fw.pending = false
	if fw.t != nil {
		fw.t.Stop()
	}
}

// removeHopByHop is httputil's removeHopByHopHeaders.
func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = strings.Trim(sf, " \t\r\n"); sf != "" {
				h.Del(sf)
			}
		}
	}
	// The names are canonical already: delete them directly rather than
	// through Header.Del, which canonicalises each one again.
	for _, f := range hopHeaders[:len(hopHeaders)-1] {
		delete(h, f)
	}
}

// reqHead is the head of one plain request, as oxy's forwarder and
// Request.Write would send it, and the room for its answer while the
// forwarder serves it: the Response and header map readFastResponse reads
// into and the body reader. Pooled.
type reqHead struct {
	method, uri, host string
	userAgent         string // "" writes none
	fields            []headerField

	resp    http.Response
	respHdr http.Header
	body    h1Body
}

// res returns the room for the answer, with a header map.
func (h *reqHead) res() *http.Response {
	if h.respHdr == nil {
		h.respHdr = make(http.Header)
	}
	h.resp.Header = h.respHdr
	return &h.resp
}

// headerField is a header name and its values, or with single its one
// value.
type headerField struct {
	key    string
	vals   []string
	one    string
	single bool
}

var reqHeads = sync.Pool{New: func() any { return &reqHead{fields: make([]headerField, 0, 16)} }}

func getReqHead() *reqHead { return reqHeads.Get().(*reqHead) }

func putReqHead(h *reqHead) {
	clear(h.fields)
	clear(h.respHdr)
	*h = reqHead{fields: h.fields[:0], respHdr: h.respHdr}
	reqHeads.Put(h)
}

// head fills h from req: oxy's HeaderRewriter (X-Real-Ip, X-Forwarded-Proto,
// -Port, -Host, -Server, each kept when the client set it, but
// X-Forwarded-Server), then httputil's X-Forwarded-For and User-Agent.
func (f *h1Forwarder) head(h *reqHead, req *http.Request) {
	h.method, h.uri, h.host = req.Method, req.RequestURI, req.Host
	hd := req.Header
	var realIP, proto, port, fwdHost, fwdFor string
	setRealIP, setProto, setPort, setHost, setFor := false, false, false, false, false
	clientIP, _, err := net.SplitHostPort(req.RemoteAddr)
	if err == nil {
		if hd.Get(forward.XRealIP) == "" {
			realIP, _, _ = strings.Cut(clientIP, "%")
			setRealIP = true
		}
	}
	proto = hd.Get(forward.XForwardedProto)
	if proto == "" {
		proto, setProto = "http", true
		if req.TLS != nil {
			proto = "https"
		}
	}
	if hd.Get(forward.XForwardedPort) == "" {
		setPort = true
		if _, p, err := net.SplitHostPort(req.Host); err == nil && p != "" {
			port = p
		} else if proto == "https" || proto == "wss" || req.TLS != nil {
			port = "443"
		} else {
			port = "80"
		}
	}
	if hd.Get(forward.XForwardedHost) == "" && req.Host != "" {
		fwdHost, setHost = req.Host, true
	}
	if err == nil {
		prior, ok := hd[forward.XForwardedFor]
		if !ok || prior != nil {
			fwdFor, setFor = clientIP, true
			if len(prior) > 0 {
				fwdFor = strings.Join(prior, ", ") + ", " + clientIP
			}
		}
	}
	if ua, ok := hd["User-Agent"]; ok && len(ua) > 0 {
		h.userAgent = cleanValue(ua[0])
	}
	for k, vv := range hd {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue // Request.Write writes these itself, or not at all
		case forward.XRealIP:
			if setRealIP {
				continue
			}
		case forward.XForwardedProto:
			if setProto {
				continue
			}
		case forward.XForwardedPort:
			if setPort {
				continue
			}
		case forward.XForwardedHost:
			if setHost {
				continue
			}
		case forward.XForwardedServer:
			if f.hostname != "" {
				continue
			}
		case forward.XForwardedFor:
			if setFor {
				continue
			}
		}
		h.fields = append(h.fields, headerField{key: k, vals: vv})
	}
	add := func(set bool, k, v string) {
		if set {
			h.fields = append(h.fields, headerField{key: k, one: v, single: true})
		}
	}
	add(setRealIP, forward.XRealIP, realIP)
	add(setProto, forward.XForwardedProto, proto)
	add(setPort, forward.XForwardedPort, port)
	add(setHost, forward.XForwardedHost, fwdHost)
	add(f.hostname != "", forward.XForwardedServer, f.hostname)
	add(setFor, forward.XForwardedFor, fwdFor)
	// Request.Write sorts the header by name; few, so insertion sort.
	fs := h.fields
	for i := 1; i < len(fs); i++ {
		for j := i; j > 0 && fs[j].key < fs[j-1].key; j-- {
			fs[j], fs[j-1] = fs[j-1], fs[j]
		}
	}
}

// write writes the head as Request.Write does for a request without body.
func (h *reqHead) write(w *bufio.Writer) error {
	w.WriteString(h.method)
	w.WriteByte(' ')
	w.WriteString(h.uri)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(h.host)
	w.WriteString("\r\n")
	if h.userAgent != "" {
		w.WriteString("User-Agent: ")
		w.WriteString(h.userAgent)
		w.WriteString("\r\n")
	}
	for i := range h.fields {
		f := &h.fields[i]
		if !httpguts.ValidHeaderFieldName(f.key) {
			continue // Request.Write drops them too
		}
		if f.single {
			writeField(w, f.key, f.one)
			continue
		}
		for _, v := range f.vals {
			writeField(w, f.key, v)
		}
	}
	_, err := w.WriteString("\r\n")
	return err
}

func writeField(w *bufio.Writer, k, v string) {
	w.WriteString(k)
	w.WriteString(": ")
	w.WriteString(cleanValue(v))
	w.WriteString("\r\n")
}

// cleanValue is what Request.Write makes of a header value: CR and LF
// turned into spaces, surrounding white space trimmed.
func cleanValue(v string) string {
	if strings.ContainsAny(v, "\r\n") {
		v = headerNewlineToSpace.Replace(v)
	}
	return textproto.TrimString(v) // trims " \t\r\n", as strings.Trim with that cutset, without building the set
}
