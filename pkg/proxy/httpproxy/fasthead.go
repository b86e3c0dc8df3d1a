package httpproxy

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"net/url"

	"golang.org/x/net/http/httpguts"
)

// The plain heads: most mesh requests are GETs without body whose head
// repeats the last one on the same connection but for the path, and whose
// answer repeats the last answer but for the Date. net/http's parsers
// allocate about 1.3 KB for each such exchange (the Request, its URL, two
// header maps and their strings), which made most of the proxy's garbage:
// the collector ran about once a second at 2,000 requests a second, and
// each mark phase, on a core shared with the backend, held up the requests
// in flight (docs/proxy.md, Performance). The parsers here take only heads
// in a strict subset of what net/http accepts (parseable without judgment:
// CRLF line ends, token names, printable ASCII values, no folding, no
// framing or connection headers) and read them into a connection's own
// Request, URL and header map, interning names and values that came
// before. Anything else, they leave in the buffer untouched for net/http's
// parser. TestFastRequestMatchesNetHTTP and TestFastResponseMatchesNetHTTP
// (and their fuzz targets) hold them to net/http's result on every head
// they take.

// maxFastHeadFields bounds the header fields of a head taken here.
const maxFastHeadFields = 64

// headNames interns the header names of one connection with the value each
// last had, so that a head like the last one allocates no string.
type headNames struct {
	names []headName
}

type headName struct {
	raw, canon string // as sent, and canonical
	val        string // the value it had last
}

// maxHeadNames bounds the names a connection interns.
const maxHeadNames = 32

// lookup returns raw's entry, made if there is room; nil if there is none.
// The pointer is good until the next lookup.
func (c *headNames) lookup(raw []byte) *headName {
	for i := range c.names {
		if c.names[i].raw == string(raw) {
			return &c.names[i]
		}
	}
	if len(c.names) == maxHeadNames {
		return nil
	}
	s := string(raw)
	c.names = append(c.names, headName{raw: s, canon: textproto.CanonicalMIMEHeaderKey(s)})
	return &c.names[len(c.names)-1]
}

// value returns v as a string, the interned one when it is unchanged.
func (n *headName) value(v []byte) string { return intern(&n.val, v) }

// intern returns b as a string: *last when it holds the same bytes (no
// string is made), else a new one, kept in *last.
func intern(last *string, b []byte) string {
	if *last != string(b) {
		*last = string(b)
	}
	return *last
}

// headEnd returns the length of the head at the start of b, up to and
// including the blank line's CRLF, or -1 if b holds no whole head.
func headEnd(b []byte) int {
	if i := bytes.Index(b, crlfcrlf); i >= 0 {
		return i + 4
	}
	return -1
}

var crlfcrlf = []byte("\r\n\r\n")

// bufferedHead returns the head held whole in br's buffer: its start line
// (without its CRLF), its header lines (through the blank line) and its
// length. ok is false when the buffer holds no whole head or the start
// line does not end in CRLF.
func bufferedHead(br *bufio.Reader) (start, fields []byte, n int, ok bool) {
	b, _ := br.Peek(br.Buffered())
	n = headEnd(b)
	if n < 0 {
		return nil, nil, 0, false
	}
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, 0, false
	}
	return b[:i-1], b[i+1 : n], n, true
}

// hasAny reports whether h has any of the names.
func hasAny(h http.Header, names []string) bool {
	for _, k := range names {
		if _, ok := h[k]; ok {
			return true
		}
	}
	return false
}

// plainValueByte reports whether c may appear in a value taken here:
// printable ASCII, space and tab (net/http also takes obs-text).
func plainValueByte(c byte) bool { return c == '\t' || c >= 0x20 && c < 0x7f }

// readFields reads the header fields in b (each line ending in CRLF; b
// ends with the blank line) into h, which must be empty, appending the
// values to vals, and returns vals. ok is false for anything outside the
// plain grammar. A name's first value is vals[i:i+1:i+1], so a later
// append to it cannot reach the next value.
func (c *headNames) readFields(b []byte, h http.Header, vals []string) (_ []string, ok bool) {
	for n := 0; ; n++ {
		i := bytes.IndexByte(b, '\n')
		if i < 1 || b[i-1] != '\r' || n > maxFastHeadFields {
			return vals, false
		}
		line := b[:i-1]
		b = b[i+1:]
		if len(line) == 0 {
			return vals, len(b) == 0
		}
		colon := -1
		for j, ch := range line {
			if ch == ':' {
				colon = j
				break
			}
			if !httpguts.IsTokenRune(rune(ch)) {
				return vals, false
			}
		}
		if colon < 1 {
			return vals, false
		}
		v := line[colon+1:]
		for _, ch := range v {
			if !plainValueByte(ch) {
				return vals, false
			}
		}
		v = textproto.TrimBytes(v) // space and tab: CR and LF were refused above
		var name, val string
		if e := c.lookup(line[:colon]); e != nil {
			name, val = e.canon, e.value(v)
		} else {
			name, val = textproto.CanonicalMIMEHeaderKey(string(line[:colon])), string(v)
		}
		if old, dup := h[name]; dup {
			h[name] = append(old, val)
			continue
		}
		vals = append(vals, val)
		h[name] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
}

// fastRequest is a server connection's parser of plain request heads, and
// the Request, URL and header map it reads them into, again for each
// request. The server hands the Request to its handler, and takes the
// next one only once the handler has returned and the answer is written;
// nothing on the way keeps it (httputil's ReverseProxy clones it, the
// plain forwarder copies what it sends).
type fastRequest struct {
	req    http.Request
	url    url.URL
	hdr    http.Header
	vals   []string
	names  headNames
	target string // the last request target
}

// fastRequestFallback are the headers that send a head to net/http's
// parser: they frame a body, or net/http derives fields from them
// (Connection sets Close, Pragma: no-cache adds Cache-Control).
var fastRequestFallback = [...]string{"Content-Length", "Transfer-Encoding", "Trailer", "Connection", "Expect", "Upgrade", "Pragma"}

// plainMethods are the methods of a plain request head.
var plainMethods = [...]string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodDelete, http.MethodOptions, http.MethodPatch}

// read takes the plain request head at the start of br, if br holds one
// whole, and returns its Request; nil leaves br as it was.
func (f *fastRequest) read(br *bufio.Reader) *http.Request {
	line, fields, end, ok := bufferedHead(br)
	if !ok {
		return nil
	}
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return nil
	}
	method := ""
	for _, m := range plainMethods {
		if string(line[:sp]) == m {
			method = m // the constant: no string made of the bytes
			break
		}
	}
	if method == "" {
		return nil
	}
	rest := line[sp+1:]
	const proto = " HTTP/1.1"
	if !bytes.HasSuffix(rest, []byte(proto)) {
		return nil
	}
	target := rest[:len(rest)-len(proto)]
	q, ok := plainTarget(target)
	if !ok {
		return nil
	}
	if f.hdr == nil {
		f.hdr = make(http.Header)
	}
	clear(f.hdr)
	f.vals, ok = f.names.readFields(fields, f.hdr, f.vals[:0])
	if !ok {
		return nil
	}
	host, ok := f.hdr["Host"]
	if !ok || len(host) != 1 || hasAny(f.hdr, fastRequestFallback[:]) {
		return nil
	}
	delete(f.hdr, "Host")
	intern(&f.target, target)
	f.url = url.URL{Path: f.target}
	if q >= 0 {
		f.url = url.URL{Path: f.target[:q], RawQuery: f.target[q+1:]}
	}
	f.req = http.Request{
		Method:     method,
		URL:        &f.url,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     f.hdr,
		Body:       http.NoBody,
		Host:       host[0],
		RequestURI: f.target,
	}
	br.Discard(end)
	return &f.req
}

// plainTarget reports whether t is an origin-form target that url's
// ParseRequestURI takes as it is: a path of bytes that need no escaping
// (so Path is the path and RawPath empty), then perhaps a query of
// printable ASCII that is not empty. q is the index of the '?', or -1.
func plainTarget(t []byte) (q int, ok bool) {
	if len(t) == 0 || t[0] != '/' {
		return -1, false
	}
	q = -1
	for i, c := range t {
		switch {
		case q >= 0:
			if c <= ' ' || c >= 0x7f {
				return -1, false
			}
		case c == '?':
			q = i
		case !unescapedPathByte(c):
			return -1, false
		}
	}
	return q, q != len(t)-1
}

// unescapedPathByte reports whether url's escaping of a path leaves c as it
// is.
func unescapedPathByte(c byte) bool {
	if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
		return true
	}
	switch c {
	case '-', '_', '.', '~', '$', '&', '+', ',', '/', ':', ';', '=', '@':
		return true
	}
	return false
}

// fastResponseFallback are the answer headers that send a head to
// net/http's parser (see fastRequestFallback).
var fastResponseFallback = [...]string{"Transfer-Encoding", "Trailer", "Connection", "Pragma"}

// readFastResponse takes the plain answer to the GET req at the start of
// pc's read buffer, if the buffer holds it whole, into res, whose Header
// must be a map (it is cleared): HTTP/1.1, a final status that has a body (not 1xx,
// 204 or 304), and one Content-Length. It leaves the body to be read and
// the buffer as it was when it takes nothing.
func (pc *h1Conn) readFastResponse(req *http.Request, res *http.Response) bool {
	line, fields, end, ok := bufferedHead(pc.br)
	if !ok {
		return false
	}
	const proto = "HTTP/1.1 "
	if len(line) < len(proto)+3 || string(line[:len(proto)]) != proto {
		return false
	}
	st := line[len(proto):]
	if st[0] < '2' || st[0] > '5' || !digit(st[1]) || !digit(st[2]) {
		return false
	}
	code := int(st[0]-'0')*100 + int(st[1]-'0')*10 + int(st[2]-'0')
	if code == http.StatusNoContent || code == http.StatusNotModified {
		return false
	}
	if len(st) > 3 && st[3] != ' ' {
		return false
	}
	for _, c := range st {
		if !plainValueByte(c) {
			return false
		}
	}
	hdr := res.Header
	clear(hdr)
	// One allocation for the values: the forwarder hands their slices on
	// to the client's answer, which outlives this exchange.
	vals := make([]string, 0, bytes.Count(fields, crlfcrlf[:2])-1)
	if _, ok := pc.names.readFields(fields, hdr, vals); !ok {
		return false
	}
	cl := hdr["Content-Length"]
	if len(cl) != 1 {
		return false
	}
	n, ok := parseLength(cl[0])
	if !ok || hasAny(hdr, fastResponseFallback[:]) {
		return false
	}
	*res = http.Response{
		Status:        intern(&pc.status, st),
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        hdr,
		ContentLength: n,
		Request:       req,
	}
	pc.br.Discard(end)
	return true
}

func digit(c byte) bool { return '0' <= c && c <= '9' }

// parseLength parses a Content-Length of digits only, as net/http does,
// up to 18 of them.
func parseLength(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if !digit(s[i]) {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}
