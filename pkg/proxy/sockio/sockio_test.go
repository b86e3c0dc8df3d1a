package sockio

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection, each wrapped.
func pair(t *testing.T) (*Conn, *Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := Listener{l}.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	d, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-accepted
	if a == nil {
		t.FailNow()
	}
	ca, ok1 := a.(*Conn)
	cd, ok2 := Wrap(d).(*Conn)
	if !ok1 || !ok2 {
		t.Fatalf("not wrapped: %T %T", a, Wrap(d))
	}
	t.Cleanup(func() { ca.Close(); cd.Close() })
	return ca, cd
}

// Megabytes written against a reader that reads in small, slow steps: the
// writer fills the socket's buffer, waits in the poller and resumes where
// its last write stopped.
func TestLargeWriteSlowReader(t *testing.T) {
	a, b := pair(t)
	want := make([]byte, 8<<20)
	rand.New(rand.NewSource(1)).Read(want)
	errc := make(chan error, 1)
	go func() {
		n, err := a.Write(want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		errc <- err
	}()
	got := make([]byte, 0, len(want))
	buf := make([]byte, 3001)
	if err := b.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for i := 0; len(got) < len(want); i++ {
		if i%500 == 0 {
			time.Sleep(time.Millisecond)
		}
		n, err := b.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes differ")
	}
}

func TestEOFAndHalfClose(t *testing.T) {
	a, b := pair(t)
	if _, err := a.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if err := a.CloseWrite(); err != nil { // net.TCPConn's, promoted
		t.Fatal(err)
	}
	got, err := io.ReadAll(b) // io.ReadAll stops at io.EOF only
	if err != nil || string(got) != "ping" {
		t.Fatalf("read %q, %v", got, err)
	}
	// The other direction still carries data.
	if _, err := b.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	n, err := a.Read(buf)
	if err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if n, err := a.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty read: %d, %v", n, err)
	}
}

func TestReadDeadline(t *testing.T) {
	a, _ := pair(t)
	if err := a.SetReadDeadline(time.Now().Add(30 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := a.Read(make([]byte, 8))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("want a timeout, got %v", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("want a read OpError, got %#v", err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("returned after %v", d)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	a, _ := pair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 8))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	a.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("want net.ErrClosed, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
}

// A reset by the peer is a syscall error callers can recognise, as from
// net.TCPConn (the HTTP transport retries an idle connection on it).
func TestResetByPeer(t *testing.T) {
	a, b := pair(t)
	if err := b.SetLinger(0); err != nil {
		t.Fatal(err)
	}
	b.Close()
	_, err := a.Read(make([]byte, 8))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("want ECONNRESET, got %v", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("want a read OpError, got %#v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = a.Write([]byte("x"))
		if err != nil || time.Now().After(deadline) {
			break
		}
	}
	if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("write after reset: want EPIPE or ECONNRESET, got %v", err)
	}
}

// Reads and writes from several goroutines at once keep every byte (run
// with -race).
func TestConcurrent(t *testing.T) {
	a, b := pair(t)
	const writers, each = 4, 2000
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := a.Write([]byte{byte(w)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	counts := make([]int, writers)
	var mu sync.Mutex
	var rg sync.WaitGroup
	total := 0
	for r := 0; r < 2; r++ {
		rg.Add(1)
		go func() {
			defer rg.Done()
			buf := make([]byte, 7)
			for {
				n, err := b.Read(buf)
				mu.Lock()
				for _, x := range buf[:n] {
					counts[x]++
				}
				total += n
				done := total == writers*each
				mu.Unlock()
				if done {
					b.SetReadDeadline(time.Now()) // release the other reader
					return
				}
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	rg.Wait()
	for w, n := range counts {
		if n != each {
			t.Fatalf("writer %d: %d bytes read, want %d", w, n, each)
		}
	}
}

// A read or write that completes allocates nothing.
func TestNoAllocations(t *testing.T) {
	a, b := pair(t)
	msg, buf := []byte("hello"), make([]byte, 16)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := a.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(b, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per write and read", allocs)
	}
}

func TestWrapLeavesOtherConns(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	if Wrap(c1) != c1 {
		t.Fatal("a net.Pipe end was wrapped")
	}
}

// WaitRead returns when there is something to read and leaves it there;
// it returns at the peer's end of stream too, and on the read deadline.
func TestWaitRead(t *testing.T) {
	a, b := pair(t)
	done := make(chan error, 1)
	go func() { done <- a.WaitRead() }()
	select {
	case err := <-done:
		t.Fatalf("returned with nothing to read: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	if _, err := b.Write([]byte("GET")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Twice: the byte is still there.
	if err := a.WaitRead(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if n, err := a.Read(buf); err != nil || string(buf[:n]) != "GET" {
		t.Fatalf("read %q, %v after the waits", buf[:n], err)
	}

	if err := a.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	err := a.WaitRead()
	var oe *net.OpError
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("want a read timeout, got %#v", err)
	}
	if err := a.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}

	if err := b.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitRead(); err != nil {
		t.Fatalf("at the end of stream: %v", err)
	}
	if _, err := a.Read(buf); err != io.EOF {
		t.Fatalf("read after the end of stream: %v", err)
	}
}

func TestWaitReadAllocations(t *testing.T) {
	a, b := pair(t)
	if _, err := b.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitRead(); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = a.WaitRead() }); n != 0 {
		t.Fatalf("%v allocations per wait, want 0", n)
	}
}
