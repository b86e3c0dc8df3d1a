package httpproxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// FuzzServerDiff sends the same bytes, then a half-close, to net/http's
// server and to Server, both serving one echo handler on loopback, and
// requires the same bytes back and the same close. The half-close ends
// every exchange without waiting on timeouts: each server answers the
// complete requests it has, then sees the end. `go test` runs the seeds
// (TestServerDiffWire's single-step cases); `go test -fuzz FuzzServerDiff`
// searches further.
func FuzzServerDiff(f *testing.F) {
	for _, tc := range sdCases() {
		if tc.deliberate == "" && len(tc.steps) == 1 && !strings.Contains(tc.steps[0], sdFIN) {
			f.Add([]byte(tc.steps[0]))
		}
	}
	f.Add([]byte("POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.0\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcHEAD /h HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))
	var addrs [2]string
	for i, im := range sdImpls {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			f.Fatal(err)
		}
		srv := im.new(http.HandlerFunc(fuzzEcho), ServerOptions{ReadHeaderTimeout: 5 * time.Second})
		go func() { _ = srv.Serve(l) }()
		f.Cleanup(func() { srv.Close() })
		addrs[i] = l.Addr().String()
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 64<<10 || fuzzDeliberate(in) {
			t.Skip()
		}
		ref, refClosed := fuzzExchange(t, addrs[0], in)
		got, gotClosed := fuzzExchange(t, addrs[1], in)
		if !bytes.Equal(ref, got) || refClosed != gotClosed {
			t.Errorf("input %q\nnet/http (closed %v): %q\nnew      (closed %v): %q", in, refClosed, ref, gotClosed, got)
		}
	})
}

// fuzzEcho answers with what it saw of the request, never its context
// (the background read notices the half-close at different times: the
// first documented difference).
func fuzzEcho(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q %s host=%q url=%q\n", r.Method, r.RequestURI, r.Proto, r.Host, r.URL.String())
	fmt.Fprintf(&b, "len=%d te=%q close=%v\n", r.ContentLength, r.TransferEncoding, r.Close)
	sdDump(&b, "h", r.Header)
	fmt.Fprintf(&b, "body=%q err=%v\n", body, err)
	sdDump(&b, "t", r.Trailer)
	if strings.Contains(r.URL.Path, "chunk") {
		io.WriteString(w, b.String())
		http.NewResponseController(w).Flush()
		return
	}
	w.Header().Set("X-Echo", "1")
	io.WriteString(w, b.String())
}

// emptyHost matches a request head with an empty Host field, which
// Server refuses and net/http passes on (documented).
var emptyHost = regexp.MustCompile(`(?i)\nhost:[ \t]*\r?\n`)

// fuzzDeliberate reports inputs that reach a documented difference.
func fuzzDeliberate(in []byte) bool {
	return emptyHost.Match(in) || bytes.Contains(bytes.ToLower(in), []byte("expect:"))
}

// fuzzExchange writes in, half-closes, and reads until the server closes
// (bounded); Date values are normalised.
func fuzzExchange(t *testing.T, addr string, in []byte) ([]byte, bool) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// No TIME_WAIT left behind: a fuzzing run makes hundreds of thousands
	// of connections, and would run out of loopback ports.
	_ = c.(*net.TCPConn).SetLinger(0)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(in); err != nil {
		return []byte("write: " + err.Error()), true
	}
	_ = c.(*net.TCPConn).CloseWrite()
	out, err := io.ReadAll(c)
	closed := err == nil || sdClosed(err)
	return sdDates.ReplaceAll(out, []byte("Date: <date>")), closed
}
