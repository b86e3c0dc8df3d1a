package httpproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/pkg/proxy/sockio"
)

// h1Backend is an httptest server that counts the connections it accepted.
type h1Backend struct {
	*httptest.Server
	conns atomic.Int32
}

func newH1Backend(t *testing.T, h http.HandlerFunc) *h1Backend {
	t.Helper()
	b := &h1Backend{}
	b.Server = httptest.NewUnstartedServer(h)
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

func newTestH1(idle, header time.Duration) *h1Transport {
	d := &net.Dialer{Timeout: time.Second}
	fb := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4}
	return newH1Transport(fb, sockio.DialContext(d.DialContext), 4, idle, header)
}

// get sends a request through tr and returns the status and body.
func h1Do(t *testing.T, tr http.RoundTripper, method, url string, body io.Reader) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestH1TransportReusesConnections(t *testing.T) {
	be := newH1Backend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/chunked":
			w.Write([]byte("a"))
			w.(http.Flusher).Flush()
			w.Write([]byte("b"))
		default:
			io.WriteString(w, "hello "+r.Method)
		}
	})
	tr := newTestH1(time.Minute, time.Second)
	defer tr.CloseIdleConnections()
	for i, c := range []struct{ method, path, want string }{
		{"GET", "/", "hello GET"}, {"HEAD", "/", ""}, {"GET", "/empty", ""}, {"GET", "/chunked", "ab"}, {"OPTIONS", "/", "hello OPTIONS"},
	} {
		code, body, err := h1Do(t, tr, c.method, be.URL+c.path, nil)
		if err != nil || code/100 != 2 || body != c.want {
			t.Fatalf("request %d %s %s: %d %q %v", i, c.method, c.path, code, body, err)
		}
	}
	if n := be.conns.Load(); n != 1 {
		t.Errorf("5 sequential requests used %d backend connections, want 1", n)
	}
}

// An idle pooled connection holds no buffers; it takes them again for its
// next request, which it carries.
func TestH1TransportIdleConnectionsHoldNoBuffers(t *testing.T) {
	be := newH1Backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	tr := newTestH1(time.Minute, time.Second)
	defer tr.CloseIdleConnections()
	for i := range 3 {
		if code, body, err := h1Do(t, tr, "GET", be.URL, nil); err != nil || code != 200 || body != "hello" {
			t.Fatalf("request %d: %d %q %v", i, code, body, err)
		}
		tr.mu.Lock()
		var idle []*h1Conn
		for _, conns := range tr.idle {
			idle = append(idle, conns...)
		}
		tr.mu.Unlock()
		if len(idle) != 1 {
			t.Fatalf("request %d: %d idle connections, want 1", i, len(idle))
		}
		if idle[0].br != nil || idle[0].bw != nil {
			t.Fatalf("request %d: the idle connection holds its buffers", i)
		}
	}
	if n := be.conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 requests, want 1", n)
	}
}

func TestH1TransportFallsBackForBodiesAndUpgrades(t *testing.T) {
	be := newH1Backend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+string(b))
	})
	tr := newTestH1(time.Minute, time.Second)
	defer tr.CloseIdleConnections()
	code, body, err := h1Do(t, tr, "POST", be.URL, strings.NewReader("payload"))
	if err != nil || code != 200 || body != "POST payload" {
		t.Fatalf("POST: %d %q %v", code, body, err)
	}
	for _, c := range []struct {
		name string
		req  func() *http.Request
		want bool
	}{
		{"GET", func() *http.Request { return httptest.NewRequest("GET", "http://x/", nil) }, true},
		{"POST without body (not safe to send twice)", func() *http.Request { return httptest.NewRequest("POST", "http://x/", nil) }, false},
		{"GET with body", func() *http.Request { return httptest.NewRequest("GET", "http://x/", strings.NewReader("x")) }, false},
		{"upgrade", func() *http.Request {
			r := httptest.NewRequest("GET", "http://x/", nil)
			r.Header.Set("Upgrade", "websocket")
			return r
		}, false},
		{"expect", func() *http.Request {
			r := httptest.NewRequest("GET", "http://x/", nil)
			r.Header.Set("Expect", "100-continue")
			return r
		}, false},
		{"https", func() *http.Request { return httptest.NewRequest("GET", "https://x/", nil) }, false},
	} {
		r := c.req()
		if got := lean(r); got != c.want {
			t.Errorf("%s: lean %v, want %v", c.name, got, c.want)
		}
	}
}

// A backend that closes a keep-alive connection while it is idle in the
// pool: the next request finds it closed and is sent on a new one.
func TestH1TransportResendsOnStaleConnection(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				// Keep-alive answer, then close without saying so: the
				// connection goes idle in the pool already dead.
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}()
		}
	}()
	tr := newTestH1(time.Minute, time.Second)
	defer tr.CloseIdleConnections()
	for i := range 5 {
		code, body, err := h1Do(t, tr, "GET", "http://"+l.Addr().String()+"/", nil)
		if err != nil || code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q %v", i, code, body, err)
		}
		time.Sleep(20 * time.Millisecond) // let the backend's close arrive
	}
	if n := accepted.Load(); n < 5 {
		t.Errorf("backend accepted %d connections for 5 requests it closed after each", n)
	}
}

func TestH1TransportCancelAndTimeout(t *testing.T) {
	release := make(chan struct{})
	be := newH1Backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/partial" {
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "12345")
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	tr := newTestH1(time.Minute, 100*time.Millisecond)
	defer tr.CloseIdleConnections()

	// No response head within the header timeout: a timeout error (504).
	start := time.Now()
	_, _, err := h1Do(t, tr, "GET", be.URL+"/slow", nil)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || isDialError(err) || time.Since(start) > 2*time.Second {
		t.Errorf("header timeout: %v after %v", err, time.Since(start))
	}

	// The request's context ends while the head is awaited: its cause.
	tr.headerTimeout = 0
	cause := errors.New("route timeout")
	ctx, cancel := context.WithTimeoutCause(context.Background(), 50*time.Millisecond, cause)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", be.URL+"/slow", nil)
	if _, err := tr.RoundTrip(req); err != cause {
		t.Errorf("cancelled while waiting for the head: %v, want the context's cause", err)
	}

	// It ends while the body is read: the read fails with the cause and
	// the connection is not reused.
	ctx2, cancel2 := context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx2, "GET", be.URL+"/partial", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel2)
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
		t.Errorf("body read after cancel: %v, want context.Canceled", err)
	}
	resp.Body.Close()
	tr.mu.Lock()
	idle := len(tr.idle)
	tr.mu.Unlock()
	if idle != 0 {
		t.Errorf("%d idle addresses after failed exchanges, want none", idle)
	}
}

// watchCtx is a context that counts the callbacks context.AfterFunc
// registers on it (context asks a Context with an AfterFunc method, when it
// is not one of its own).
type watchCtx struct {
	done      chan struct{}
	once      sync.Once
	callbacks atomic.Int32
	mu        sync.Mutex
	fs        []func()
}

func newWatchCtx() *watchCtx { return &watchCtx{done: make(chan struct{})} }

func (c *watchCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *watchCtx) Done() <-chan struct{}       { return c.done }
func (c *watchCtx) Value(any) any               { return nil }
func (c *watchCtx) Err() error {
	select {
	case <-c.done:
		return context.Canceled
	default:
		return nil
	}
}

func (c *watchCtx) AfterFunc(f func()) func() bool {
	c.callbacks.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	i := len(c.fs)
	c.fs = append(c.fs, f)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.fs[i] == nil {
			return false
		}
		c.fs[i] = nil
		return true
	}
}

func (c *watchCtx) cancel() {
	c.once.Do(func() {
		close(c.done)
		c.mu.Lock()
		fs := c.fs
		c.fs = make([]func(), len(fs)) // every stop now reports false
		c.mu.Unlock()
		for _, f := range fs {
			if f != nil {
				go f()
			}
		}
	})
}

// An answer within lazyWatch sets up no watch of the request's context; a
// longer wait does, and a request cancelled in either stretch ends with
// its context's error, the connection closed.
func TestH1TransportWatchesContextOnlyOnLongWaits(t *testing.T) {
	closed := make(chan struct{}, 4)
	be := newH1Backend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			time.Sleep(3 * lazyWatch)
		case "/hang":
			<-r.Context().Done() // the proxy closed the connection
			closed <- struct{}{}
			return
		}
		io.WriteString(w, "ok")
	})
	tr := newTestH1(time.Minute, time.Minute)
	defer tr.CloseIdleConnections()
	do := func(ctx *watchCtx, path string) error {
		req, _ := http.NewRequestWithContext(ctx, "GET", be.URL+path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && string(b) != "ok" {
			err = errors.New("body " + string(b))
		}
		return err
	}

	// The first request dials, and the dial watches its context.
	if _, _, err := h1Do(t, tr, "GET", be.URL+"/fast", nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		ctx := newWatchCtx()
		if err := do(ctx, "/fast"); err != nil {
			t.Fatal(err)
		}
		if n := ctx.callbacks.Load(); n != 0 {
			t.Fatalf("fast answer %d: %d context callbacks, want none", i, n)
		}
	}
	ctx := newWatchCtx()
	if err := do(ctx, "/slow"); err != nil {
		t.Fatal(err)
	}
	if n := ctx.callbacks.Load(); n != 1 {
		t.Fatalf("answer after %v: %d context callbacks, want 1", 3*lazyWatch, n)
	}
	// The connection of the slow answer went back to the pool, usable.
	if err := do(newWatchCtx(), "/fast"); err != nil {
		t.Fatal(err)
	}

	for _, after := range []time.Duration{lazyWatch / 5, 4 * lazyWatch} {
		ctx := newWatchCtx()
		time.AfterFunc(after, ctx.cancel)
		start := time.Now()
		errc := make(chan error, 1)
		go func() { errc <- do(ctx, "/hang") }()
		var err error
		select {
		case err = <-errc:
		case <-time.After(10 * time.Second):
			t.Fatalf("cancelled after %v: the round trip did not end", after)
		}
		took := time.Since(start)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled after %v: %v, want context.Canceled", after, err)
		}
		// Noticed at the latest when lazyWatch passes, or at once once
		// watched; the bound is loose for slow machines.
		if took > after+lazyWatch+time.Second {
			t.Errorf("cancelled after %v: the round trip ended after %v", after, took)
		}
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Errorf("cancelled after %v: the backend connection was not closed", after)
		}
	}
}

func TestH1TransportClosesUnfinishedAndIdleConnections(t *testing.T) {
	be := newH1Backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, strings.Repeat("x", 100<<10))
	})
	tr := newTestH1(150*time.Millisecond, time.Second)
	defer tr.CloseIdleConnections()
	idleConns := func() int {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		n := 0
		for _, c := range tr.idle {
			n += len(c)
		}
		return n
	}
	// A body closed before its end: the connection is dropped.
	req, _ := http.NewRequest("GET", be.URL+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Read(make([]byte, 10))
	resp.Body.Close()
	if n := idleConns(); n != 0 {
		t.Errorf("%d idle connections after an unfinished body", n)
	}
	// Connection: close from the backend: not kept.
	if code, _, err := h1Do(t, tr, "GET", be.URL+"/close", nil); err != nil || code != 200 {
		t.Fatal(code, err)
	}
	if n := idleConns(); n != 0 {
		t.Errorf("%d idle connections after Connection: close", n)
	}
	// A finished exchange is kept, then swept once idle too long.
	if code, _, err := h1Do(t, tr, "GET", be.URL+"/", nil); err != nil || code != 200 {
		t.Fatal(code, err)
	}
	if n := idleConns(); n != 1 {
		t.Errorf("%d idle connections after a finished exchange, want 1", n)
	}
	deadline := time.Now().Add(2 * time.Second)
	for idleConns() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := idleConns(); n != 0 {
		t.Errorf("%d idle connections 2 s after a 150 ms idle timeout", n)
	}
}

func TestH1TransportSkipsInformationalResponses(t *testing.T) {
	be := newH1Backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "final")
	})
	tr := newTestH1(time.Minute, time.Second)
	defer tr.CloseIdleConnections()
	if code, body, err := h1Do(t, tr, "GET", be.URL, nil); err != nil || code != 200 || body != "final" {
		t.Errorf("after 103: %d %q %v", code, body, err)
	}
}

// Bytes after the end of an answer are not taken as the next request's
// answer: the connection is dropped.
func TestH1TransportDropsConnectionWithTrailingGarbage(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for n := 0; ; n++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func(n int) {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					if n == 0 {
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 500 Bogus\r\nContent-Length: 0\r\n\r\n")
					} else {
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					}
				}
			}(n)
		}
	}()
	tr := newTestH1(time.Minute, time.Second)
	defer tr.CloseIdleConnections()
	for i := range 2 {
		if code, body, err := h1Do(t, tr, "GET", "http://"+l.Addr().String()+"/", nil); err != nil || code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q %v", i, code, body, err)
		}
	}
}

// A request head too large to be sure a write cannot block is watched
// before it is written: cancelling the request unblocks a write to a
// backend that stopped reading.
func TestH1TransportWatchesLargeHeadsEagerly(t *testing.T) {
	be := newH1Backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	tr := newTestH1(time.Minute, time.Minute)
	defer tr.CloseIdleConnections()
	if _, _, err := h1Do(t, tr, "GET", be.URL+"/", nil); err != nil { // dials
		t.Fatal(err)
	}
	ctx := newWatchCtx()
	req, _ := http.NewRequestWithContext(ctx, "GET", be.URL+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("a", eagerWatchBytes))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n := ctx.callbacks.Load(); n != 1 {
		t.Errorf("head of %d bytes: %d context callbacks, want 1", headBytes(req), n)
	}

	// A backend that accepts and never reads.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	cctx, cancel := context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(cctx, "GET", "http://"+ln.Addr().String()+"/", nil)
	// Larger than loopback's socket buffers can hold, so the write blocks.
	req.Header.Set("X-Big", strings.Repeat("a", 64<<20))
	time.AfterFunc(100*time.Millisecond, cancel)
	errc := make(chan error, 1)
	go func() {
		_, err := tr.RoundTrip(req)
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled while writing: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a write to a backend that does not read was not unblocked by the cancel")
	}
}
