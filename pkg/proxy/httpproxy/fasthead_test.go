package httpproxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"reflect"
	"testing"
)

// The plain-head parsers against net/http's: every head they take, net/http
// takes too and reads into the same fields, leaving the same bytes after
// it; a head they do not take, they leave in the buffer.

var fastRequestSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a/b?c=d&e=%41 HTTP/1.1\r\nHost: web.shop.mesh:80\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n",
	"HEAD /x HTTP/1.1\r\nhost: a\r\nuser-agent: y\r\nx-forwarded-for: 10.0.0.1\r\n\r\n",
	"DELETE /x HTTP/1.1\r\nHost: a\r\nX: 1\r\nx: 2\r\nX: 3\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX:   a b \t \r\nY:\r\nZ: \t\r\nX_Y: 1\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET //x HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a?b#c HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a:b;c=d@e$f&g+h,i~j HTTP/1.1\r\nHost: a\r\n\r\n",
	// Not taken here: net/http decides.
	"GET /%41 HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a! HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /? HTTP/1.1\r\nHost: a\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
	"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
	"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
	"get / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX : b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
	"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
	"GET / HTTP/1.1\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: \x80\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: \x00\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n",
}

var fastResponseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
	"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\ncontent-length: 3\r\nDate: Mon, 07 Dec 2026 03:00:00 GMT\r\n\r\nabc",
	"HTTP/1.1 503 Service  Unavailable \r\nContent-Length: 1\r\nX: 1\r\nX: 2\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nContent-Length: 007\r\n\r\n1234567",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
	"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n",
	// Not taken here: net/http decides.
	"HTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n",
	"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\n\r\nuntil close",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nTrailer: X\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 2000 OK\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 600 X\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1  200 OK\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 O\x01K\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n",
}

// bufferedReader returns a reader of in with all of it (up to its size)
// in the buffer, as a connection's would hold a head that came in one read.
func bufferedReader(in []byte) *bufio.Reader {
	br := bufio.NewReaderSize(bytes.NewReader(in), 4096)
	_, _ = br.Peek(min(len(in), 4096))
	return br
}

// checkFastRequest reads the heads in the stream in with one fastRequest,
// as a connection would, and compares each it takes with net/http's.
func checkFastRequest(t *testing.T, in []byte) (taken int) {
	t.Helper()
	var fr fastRequest
	br := bufferedReader(in)
	ref := bufio.NewReader(bytes.NewReader(in))
	for {
		before := br.Buffered()
		got := fr.read(br)
		if got == nil {
			if br.Buffered() != before {
				t.Fatalf("%q: not taken, but %d bytes were", in, before-br.Buffered())
			}
			return taken
		}
		taken++
		want, err := http.ReadRequest(ref)
		if err != nil {
			t.Fatalf("%q: taken, but net/http refuses it: %v", in, err)
		}
		if want.Body != http.NoBody || got.Body != http.NoBody {
			t.Errorf("%q: bodies %v (net/http) and %v, want NoBody", in, want.Body, got.Body)
		}
		type fields struct {
			Method, Proto, Host, RequestURI string
			ProtoMajor, ProtoMinor          int
			URL                             string
			URLParts                        [4]string
			Header                          http.Header
			ContentLength                   int64
			TransferEncoding                []string
			Close                           bool
			Trailer                         http.Header
		}
		of := func(r *http.Request) fields {
			return fields{r.Method, r.Proto, r.Host, r.RequestURI, r.ProtoMajor, r.ProtoMinor, r.URL.String(),
				[4]string{r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.URL.Host}, r.Header, r.ContentLength,
				r.TransferEncoding, r.Close, r.Trailer}
		}
		if g, w := of(got), of(want); !reflect.DeepEqual(g, w) || !reflect.DeepEqual(*got.URL, *want.URL) {
			t.Fatalf("%q:\n got  %+v\n want %+v", in, g, w)
		}
		// Both buffers hold all of in when it fits.
		if len(in) <= 4096 && !bytes.Equal(peekAll(br), peekAll(ref)) {
			t.Fatalf("%q: %q left after the head, net/http leaves %q", in, peekAll(br), peekAll(ref))
		}
	}
}

// peekAll returns what br holds without taking it.
func peekAll(br *bufio.Reader) []byte {
	b, _ := br.Peek(br.Buffered())
	return b
}

func TestFastRequestMatchesNetHTTP(t *testing.T) {
	taken := 0
	for _, in := range fastRequestSeeds {
		taken += checkFastRequest(t, []byte(in))
	}
	// Each seed before the comment is taken (the pipelined one twice).
	if taken != 11 {
		t.Errorf("%d heads taken, want 11", taken)
	}
}

func FuzzFastRequest(f *testing.F) {
	for _, s := range fastRequestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkFastRequest(t, in) })
}

// checkFastResponse reads the answer to a GET at the start of in, and, if
// it takes it, compares it and its body with net/http's.
func checkFastResponse(t *testing.T, in []byte) bool {
	t.Helper()
	pc := &h1Conn{br: bufferedReader(in)}
	req := &http.Request{Method: http.MethodGet}
	res := &http.Response{Header: http.Header{"Stale": {"x"}}}
	before := pc.br.Buffered()
	if !pc.readFastResponse(req, res) {
		if pc.br.Buffered() != before {
			t.Fatalf("%q: not taken, but %d bytes were", in, before-pc.br.Buffered())
		}
		return false
	}
	ref := bufio.NewReader(bytes.NewReader(in))
	want, err := http.ReadResponse(ref, req)
	if err != nil {
		t.Fatalf("%q: taken, but net/http refuses it: %v", in, err)
	}
	type fields struct {
		Status                 string
		StatusCode             int
		Proto                  string
		ProtoMajor, ProtoMinor int
		Header                 http.Header
		ContentLength          int64
		TransferEncoding       []string
		Close, Uncompressed    bool
		Trailer                http.Header
		Request                *http.Request
	}
	of := func(r *http.Response) fields {
		return fields{r.Status, r.StatusCode, r.Proto, r.ProtoMajor, r.ProtoMinor, r.Header, r.ContentLength,
			r.TransferEncoding, r.Close, r.Uncompressed, r.Trailer, r.Request}
	}
	if g, w := of(res), of(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("%q:\n got  %+v\n want %+v", in, g, w)
	}
	wantBody, wantErr := io.ReadAll(want.Body)
	b := &h1Body{pc: pc, remain: res.ContentLength, done: true} // done: no pool to release to
	gotBody, gotErr := readAllDirect(b)
	if !bytes.Equal(gotBody, wantBody) || !errors.Is(gotErr, wantErr) && (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%q: body %q (%v), net/http's %q (%v)", in, gotBody, gotErr, wantBody, wantErr)
	}
	if wantErr == nil && !bytes.Equal(peekAll(pc.br), peekAll(ref)) {
		t.Fatalf("%q: %q left after the answer, net/http leaves %q", in, peekAll(pc.br), peekAll(ref))
	}
	return true
}

// readAllDirect reads b's body with readDirect until it ends.
func readAllDirect(b *h1Body) ([]byte, error) {
	var out []byte
	buf := make([]byte, 3)
	for {
		n, err := b.readDirect(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func TestFastResponseMatchesNetHTTP(t *testing.T) {
	taken := 0
	for _, in := range fastResponseSeeds {
		if checkFastResponse(t, []byte(in)) {
			taken++
		}
	}
	// Each seed before the comment.
	if taken != 7 {
		t.Errorf("%d answers taken, want 7", taken)
	}
}

func FuzzFastResponse(f *testing.F) {
	for _, s := range fastResponseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkFastResponse(t, in) })
}

// TestFastHeadsInternRepeats: a connection's second identical head takes
// no allocation for its names and values, only the first.
func TestFastHeadsInternRepeats(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts mean nothing under the race detector")
	}
	head := []byte("GET /items?id=1 HTTP/1.1\r\nHost: web.shop.mesh\r\nUser-Agent: load\r\nAccept: */*\r\n\r\n")
	var fr fastRequest
	br := bufio.NewReaderSize(nil, 4096)
	rd := bytes.NewReader(nil)
	read := func() {
		rd.Reset(head)
		br.Reset(rd)
		_, _ = br.Peek(len(head))
		if fr.read(br) == nil {
			t.Fatal("not taken")
		}
	}
	read()
	if n := testing.AllocsPerRun(100, read); n != 0 {
		t.Errorf("a repeated request head allocates %v times, want 0", n)
	}
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
	pc := &h1Conn{br: br}
	var h reqHead
	req := &http.Request{Method: http.MethodGet}
	readRes := func() {
		rd.Reset(answer)
		br.Reset(rd)
		_, _ = br.Peek(len(answer))
		if !pc.readFastResponse(req, h.res()) {
			t.Fatal("not taken")
		}
	}
	readRes()
	// One: the values' slice, which the client's answer keeps.
	if n := testing.AllocsPerRun(100, readRes); n != 1 {
		t.Errorf("a repeated answer head allocates %v times, want 1", n)
	}
}
