package httpproxy

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// idleServer serves as the proxy does (sdNew: sockio connections); keep
// keeps idle connections' buffers.
func idleServer(t *testing.T, opts ServerOptions, keep bool) (*Server, string) {
	t.Helper()
	s := NewServer(sdText("x"), opts)
	s.keepBuffers = keep
	return s, sdStart(t, sdNew{s}).addr
}

func heapAfterGC() uint64 {
	// Twice: a sync.Pool keeps what was put in it for one collection.
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// Kept-alive connections waiting for their next request give their
// buffers back: each holds at least 6 KiB less of the heap than one that
// keeps them (the read and write buffers are 4 KiB each).
func TestIdleConnectionsShedBuffers(t *testing.T) {
	const conns = 200
	held := func(keep bool) float64 {
		s, addr := idleServer(t, ServerOptions{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}, keep)
		before := heapAfterGC()
		cs := make([]net.Conn, conns)
		for i := range cs {
			c, br := sdConn(t, addr)
			if _, body := sdRoundTrip(t, c, br, "/"); body != "x" {
				t.Fatalf("answer %q", body)
			}
			cs[i] = c
		}
		after := heapAfterGC()
		for _, c := range cs {
			c.Close()
		}
		// Gone before the next measure begins.
		s.Close()
		for end := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			s.mu.Lock()
			n := len(s.conns)
			s.mu.Unlock()
			if n == 0 {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("%d connections still served", n)
			}
		}
		return (float64(after) - float64(before)) / conns
	}
	kept := held(true)
	shed := held(false)
	t.Logf("heap per idle connection (and its client's): %.0f B keeping the buffers, %.0f B shedding them", kept, shed)
	if kept-shed < 6<<10 {
		t.Errorf("shedding saved %.0f B per idle connection, want at least 6 KiB", kept-shed)
	}
}

// A connection that shed its buffers serves its next request, and one
// whose next head comes in pieces.
func TestShedConnectionServesNextRequest(t *testing.T) {
	for _, opts := range []ServerOptions{
		{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute},
		{},
	} {
		_, addr := idleServer(t, opts, false)
		c, br := sdConn(t, addr)
		sdRoundTrip(t, c, br, "/1")
		time.Sleep(20 * time.Millisecond)
		if _, body := sdRoundTrip(t, c, br, "/2"); body != "x" {
			t.Fatalf("%+v: after shedding: %q", opts, body)
		}
		req := sdGet("/3")
		for _, part := range []string{req[:2], req[2:8], req[8:]} {
			time.Sleep(20 * time.Millisecond)
			if _, err := io.WriteString(c, part); err != nil {
				t.Fatal(err)
			}
		}
		if _, body := sdAnswer(t, br, "a head in pieces"); body != "x" {
			t.Fatalf("%+v: a head in pieces: %q", opts, body)
		}
	}
}
