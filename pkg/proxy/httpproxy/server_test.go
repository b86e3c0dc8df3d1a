package httpproxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
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

// TestWriteHeaderFieldsMatchesWriteSubset checks the server's header writer
// against net/http's, which it replaces, on the cases WriteSubset treats
// specially, and on generated headers past the 16 names kept on the stack.
func TestWriteHeaderFieldsMatchesWriteSubset(t *testing.T) {
	cases := []struct {
		name    string
		h       http.Header
		exclude map[string]bool
	}{
		{"empty", http.Header{}, nil},
		{"plain", http.Header{"Content-Type": {"text/plain"}, "X-A": {"1", "2"}, "Etag": {`"x"`}}, nil},
		{"excluded", http.Header{"Content-Length": {"3"}, "Transfer-Encoding": {"chunked"}, "X": {"y"}}, excludedHeadersNoBody},
		{"newlines", http.Header{"X-Cr": {"a\rb"}, "X-Lf": {"a\nb"}, "X-Crlf": {"a\r\nb\r\n"}}, nil},
		{"spaces", http.Header{"X": {"  padded\t", "\t", ""}}, nil},
		{"invalid names", http.Header{"Bad Name": {"v"}, "": {"v"}, "Ok": {"v"}, "Bad:Colon": {"v"}}, nil},
		{"lower and odd names", http.Header{"x-lower": {"v"}, "X-Upper": {"v"}, "A": {"v"}, "a": {"w"}}, nil},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		h := http.Header{}
		for j := range 1 + rng.IntN(40) {
			k := fmt.Sprintf("X-%c%d", 'A'+rng.IntN(26), j)
			for range 1 + rng.IntN(3) {
				h[k] = append(h[k], strings.Repeat(" \r\nv", rng.IntN(3)))
			}
		}
		cases = append(cases, struct {
			name    string
			h       http.Header
			exclude map[string]bool
		}{fmt.Sprintf("generated %d", i), h, map[string]bool{"X-A0": true}})
	}
	for _, tc := range cases {
		var want, got bytes.Buffer
		if err := tc.h.WriteSubset(&want, tc.exclude); err != nil {
			t.Fatal(err)
		}
		bw := bufio.NewWriter(&got)
		writeHeaderFields(bw, tc.h, tc.exclude)
		bw.Flush()
		if got.String() != want.String() {
			t.Errorf("%s: got\n%q\nwant\n%q", tc.name, got.String(), want.String())
		}
	}
}
