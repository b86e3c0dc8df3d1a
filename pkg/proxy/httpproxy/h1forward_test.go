package httpproxy

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vulcand/oxy/v2/forward"
)

// rawBackend records the head of every request it gets and answers with
// the response named by the request's X-Answer header.
type rawBackend struct {
	ln    net.Listener
	mu    sync.Mutex
	heads []string
}

// The chunked answers name their Content-Type. Without one, net/http sniffs
// it from the first body write, but only if that write comes before the
// head is flushed; both forwarders (and httputil) flush the head of a body
// of unknown length from a timer of zero delay, so whether the client sees
// a sniffed Content-Type is a race, and on a loaded machine the two
// forwarders' answers differed by it.
var rawAnswers = map[string]string{
	"": "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-B: 1\r\nX-B: 2\r\n\r\nhello",
	"hop": "HTTP/1.1 200 OK\r\nConnection: X-Private, keep-alive\r\nX-Private: secret\r\nKeep-Alive: timeout=5\r\n" +
		"Proxy-Authenticate: x\r\nContent-Length: 2\r\n\r\nok",
	"chunked":  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
	"trailer":  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 42\r\nX-Late: 1\r\n\r\n",
	"sse":      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nContent-Length: 6\r\n\r\ndata:1",
	"nobody":   "HTTP/1.1 204 No Content\r\nX-C: c\r\n\r\n",
	"status":   "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nRetry-After: 1\r\n\r\nbusy",
	"early":    "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
	"headbody": "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
}

func newRawBackend(t *testing.T) *rawBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go b.serve(c)
		}
	}()
	return b
}

func (b *rawBackend) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		var head strings.Builder
		answer, length := "", 0
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if v, ok := strings.CutPrefix(line, "X-Answer: "); ok {
				answer = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			}
			if line == "\r\n" {
				break
			}
		}
		if _, err := io.CopyN(io.Discard, br, int64(length)); err != nil {
			return
		}
		b.mu.Lock()
		b.heads = append(b.heads, head.String())
		b.mu.Unlock()
		if _, err := io.WriteString(c, rawAnswers[answer]); err != nil {
			return
		}
	}
}

func (b *rawBackend) last() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.heads) == 0 {
		return ""
	}
	return b.heads[len(b.heads)-1]
}

// TestH1ForwarderMatchesOxy sends the same requests through h1Forwarder
// and through oxy's forwarder on the same transport, and compares what the
// backend received and what the client got.
func TestH1ForwarderMatchesOxy(t *testing.T) {
	be := newRawBackend(t)
	backendURL, _ := url.Parse("http://" + be.ln.Addr().String())
	d := &net.Dialer{Timeout: time.Second}
	h1 := newH1Transport(&http.Transport{DialContext: d.DialContext}, d.DialContext, 4, time.Minute, time.Second)
	defer h1.CloseIdleConnections()
	rp := forward.New(true)
	rp.Transport = h1
	rp.BufferPool = newBufferPool()
	rp.ErrorHandler = errorHandler
	fast := newH1Forwarder(rp, h1, newBufferPool())

	var usedFast atomic.Bool
	serve := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			out := new(http.Request)
			*out = *r
			out.URL = backendURL
			if f, ok := h.(*h1Forwarder); ok {
				usedFast.Store(f.plain(out))
			}
			h.ServeHTTP(w, out)
		})
	}
	fastSrv := httptest.NewServer(serve(fast))
	defer fastSrv.Close()
	oxySrv := httptest.NewServer(serve(rp))
	defer oxySrv.Close()

	cases := []struct {
		name, req string
		fast      bool
	}{
		{"plain", "GET /items?id=1 HTTP/1.1\r\nHost: web.shop.mesh\r\n\r\n", true},
		{"host port", "GET / HTTP/1.1\r\nHost: web.shop.mesh:8080\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n", true},
		{"ua empty", "GET / HTTP/1.1\r\nHost: a\r\nUser-Agent:\r\n\r\n", true},
		{"ua two", "GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: x\r\nUser-Agent: y\r\n\r\n", true},
		{"forwarded", "GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8, 9.9.9.9\r\n" +
			"X-Real-Ip: 1.2.3.4\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: outer\r\nX-Forwarded-Server: evil\r\n\r\n", true},
		{"proto wss", "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: wss\r\n\r\n", true},
		{"port kept", "GET / HTTP/1.1\r\nHost: a:1\r\nX-Forwarded-Port: 99\r\n\r\n", true},
		{"empty real ip", "GET / HTTP/1.1\r\nHost: a\r\nX-Real-Ip:\r\nX-Forwarded-Host:\r\n\r\n", true},
		{"multi values", "GET / HTTP/1.1\r\nHost: a\r\nAccept: a\r\nAccept: b\r\nCookie: c=1\r\nZ-Last: z\r\nA-First: a\r\n\r\n", true},
		{"content-length 0", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", true},
		{"head", "HEAD /h HTTP/1.1\r\nHost: a\r\nX-Answer: headbody\r\n\r\n", true},
		{"query forms", "GET /a?b?c&d=%20 HTTP/1.1\r\nHost: a\r\n\r\n", true},
		{"query fragment", "GET /a?b#x HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"force query", "GET /a? HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"path punct", "GET /a/b!$&'()*+,;=:@-._~/ HTTP/1.1\r\nHost: a\r\n\r\n", true},
		{"double slash", "GET //a//b HTTP/1.1\r\nHost: a\r\n\r\n", true},
		{"escaped path", "GET /a%2Fb/c%20d HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"absolute form", "GET http://other.host/p?q HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"ipv6 host", "GET / HTTP/1.1\r\nHost: [fd00::1]:80\r\n\r\n", true},
		{"http/1.0", "GET / HTTP/1.0\r\nHost: a\r\n\r\n", true},
		{"connection header", "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Drop\r\nX-Drop: 1\r\n\r\n", false},
		{"te trailers", "GET / HTTP/1.1\r\nHost: a\r\nTe: trailers\r\n\r\n", false},
		{"options", "OPTIONS / HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"post", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi", false},
		{"hop response", "GET / HTTP/1.1\r\nHost: a\r\nX-Answer: hop\r\n\r\n", true},
		{"chunked response", "GET / HTTP/1.1\r\nHost: a\r\nX-Answer: chunked\r\n\r\n", true},
		{"trailer response", "GET / HTTP/1.1\r\nHost: a\r\nX-Answer: trailer\r\n\r\n", true},
		{"sse response", "GET / HTTP/1.1\r\nHost: a\r\nX-Answer: sse\r\n\r\n", true},
		{"no body", "GET / HTTP/1.1\r\nHost: a\r\nX-Answer: nobody\r\n\r\n", true},
		{"backend status", "GET / HTTP/1.1\r\nHost: a\r\nX-Answer: status\r\n\r\n", true},
		{"early hints", "GET / HTTP/1.1\r\nHost: a\r\nX-Answer: early\r\n\r\n", true},
	}
	exchange := func(srv *httptest.Server, raw string) (string, string) {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		method, _, _ := strings.Cut(raw, " ")
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
		if err != nil {
			t.Fatal(err)
		}
		resp.Header.Del("Date")
		dump, err := httputil.DumpResponse(resp, true)
		if err != nil {
			t.Fatal(err)
		}
		return be.last(), string(dump)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			usedFast.Store(false)
			fastHead, fastResp := exchange(fastSrv, tc.req)
			if usedFast.Load() != tc.fast {
				t.Errorf("fast path used: %v, want %v", usedFast.Load(), tc.fast)
			}
			oxyHead, oxyResp := exchange(oxySrv, tc.req)
			if fastHead != oxyHead {
				t.Errorf("backend got\n%s\nwant (oxy)\n%s", fastHead, oxyHead)
			}
			if fastResp != oxyResp {
				t.Errorf("client got\n%s\nwant (oxy)\n%s", fastResp, oxyResp)
			}
		})
	}
}

func TestPlainRequestURIMatchesURLParse(t *testing.T) {
	for _, s := range []string{
		"/", "/a", "/a?b", "/a?", "/a??", "/a?b?", "//x", "/a/b!$&'()*+,;=:@-._~", "/a?x=%zz&y=#",
		"/[x]", "/a b", "/a%20b", "/é", "/a#b", "*", "http://h/p", "/a\"b", "/a<b>", "/a{b}", "/a|b", "/a\\b", "/a^b", "/a`b",
	} {
		u, err := url.ParseRequestURI(s)
		same := err == nil && oxyURI(u) == s
		if plainRequestURI(s) && !same {
			t.Errorf("plainRequestURI(%q) = true, but oxy sends %q", s, oxyURI(u))
		}
	}
	for c := byte(0); c < 0x80; c++ {
		s := "/a" + string(c) + "b?q" + string(c)
		u, err := url.ParseRequestURI(s)
		same := err == nil && oxyURI(u) == s
		if plainRequestURI(s) && !same {
			t.Errorf("plainRequestURI(%q) = true, but oxy sends %q", s, oxyURI(u))
		}
	}
}

// TestH1ForwarderBackendDown: a plain request to an endpoint that refuses
// the connection gets the error handler's 502, as through oxy.
func TestH1ForwarderBackendDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := New(Options{DialTimeout: time.Second})
	defer r.Close()
	if err := r.Apply(tableOf(httpRoute("web", 80, backendOf("web", 1, addr)))); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	req.Host = "web.shop.mesh"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !bytes.Equal(b, []byte("Bad Gateway\n")) {
		t.Fatalf("got %d %q", resp.StatusCode, b)
	}
}

// oxyURI is the request URI oxy's forwarder sends for a parsed one: it
// copies the path and query, not ForceQuery.
func oxyURI(u *url.URL) string {
	out := url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery}
	return out.RequestURI()
}

// eventStream decides as httputil does with mime.ParseMediaType.
func TestEventStreamMatchesParseMediaType(t *testing.T) {
	for _, ct := range []string{
		"", "text/plain", "text/plain; charset=utf-8", "text/event-stream",
		"TEXT/Event-Stream", " text/event-stream ", "text/event-stream;charset=utf-8",
		"text/event-stream; charset", "text/event-stream;;", "text/event-streams",
		"text/event-stream x", "application/text/event-stream", "text/event-ſtream",
		"text/event-stream; a=\"unterminated", "\ttext/event-stream\t;x=y",
	} {
		base, _, _ := mime.ParseMediaType(ct)
		if want := base == "text/event-stream"; eventStream(ct) != want {
			t.Errorf("eventStream(%q) = %v, want %v", ct, !want, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { eventStream("text/plain; charset=utf-8") }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// TestPlainAnswerSentBeforeTheChainReturns: a plain answer of known length
// reaches the client while the handlers above the forwarder are still
// running (here one that waits for the client to have it), not when the
// server finishes the response after they return.
func TestPlainAnswerSentBeforeTheChainReturns(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "5")
		_, _ = io.WriteString(w, "hello")
	}))
	defer be.Close()
	r := New(Options{DialTimeout: time.Second})
	defer r.Close()
	if err := r.Apply(tableOf(httpRoute("web", 80, backendOf("web", 1, strings.TrimPrefix(be.URL, "http://"))))); err != nil {
		t.Fatal(err)
	}
	sdForEach(t, func(t *testing.T, newSrv func(http.Handler, ServerOptions) sdServer) {
		got := make(chan struct{})
		sv := sdStart(t, newSrv(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			r.ServeHTTP(w, req)
			select {
			case <-got:
			case <-time.After(3 * time.Second):
			}
		}), ServerOptions{}))
		c, err := net.Dial("tcp", sv.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: web.shop.mesh\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer while the handler above the forwarder runs: %v", err)
		}
		b, err := io.ReadAll(resp.Body)
		close(got)
		if err != nil || string(b) != "hello" || resp.ContentLength != 5 || len(resp.TransferEncoding) != 0 {
			t.Fatalf("got %q (%v), length %d, transfer encoding %v", b, err, resp.ContentLength, resp.TransferEncoding)
		}
	})
}
