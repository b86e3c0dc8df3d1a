package httpproxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestServerBodyClosedAfterHandlerPanic: a body still held by another
// goroutine when its handler panics must refuse reads, not reach the
// connection's read buffer, which goes back to the pool for another
// connection.
func TestServerBodyClosedAfterHandlerPanic(t *testing.T) {
	read := make(chan struct{})
	got := make(chan error, 1)
	srv := NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		go func() {
			<-read
			_, err := r.Body.Read(make([]byte, 8))
			got <- err
		}()
		panic(http.ErrAbortHandler)
	}), ServerOptions{ReadHeaderTimeout: 5 * time.Second})
	c := serveAndDial(t, srv)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"); err != nil {
		t.Fatal(err)
	}
	// The panic aborts the response: the connection closes unanswered.
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Fatalf("after the panic: %q, %v; want a close without an answer", b, err)
	}
	close(read)
	select {
	case err := <-got:
		if !errors.Is(err, http.ErrBodyReadAfterClose) {
			t.Errorf("a read of the body after the panic: %v, want ErrBodyReadAfterClose", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the body read did not return")
	}
}

// serveAndDial serves srv on a fresh loopback listener and returns a
// connection to it; both end with the test.
func serveAndDial(t *testing.T, srv interface {
	Serve(net.Listener) error
	Close() error
}) net.Conn {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
