// Package sockio gives the HTTP data plane TCP connections whose reads and
// writes are raw system calls: they enter the kernel without telling the Go
// scheduler, which keeps the calling thread's processor (P) meanwhile.
//
// Why: a net.TCPConn's Read and Write go through syscall.Syscall, which
// marks the P as in a system call. On a node proxy run with one P (the
// benchmark's GOMAXPROCS=1, or a small CPU quota) every request makes
// about seven such calls, and each one may wake the runtime's monitor
// thread from its deep sleep; once awake it polls every 20 µs and takes
// the P from a call it finds twice, handing it to another thread. Measured
// on the proxy benchmark's layout (2026-12-06): 0.36 context switches per
// request with net.TCPConn against 0.12 here, and about 11% less CPU per
// request (docs/proxy.md, Performance). A socket made by package net is
// non-blocking, so read(2) and write(2) on it return at once, which is
// the case raw system calls are for. Waiting is still the runtime's: a
// call that would block waits in the network poller through
// syscall.RawConn, with the connection's deadlines, exactly as
// net.TCPConn's own Read does.
//
// The race detector is not told of the kernel's reads and writes of the
// buffers, as it is by package syscall's Read and Write; tests of this
// package and the proxy pass with -race, and the proxy shares no memory
// through its sockets.
//
// No library does this for a net.Conn: event-loop frameworks (gnet, evio)
// replace net/http altogether, and the proxy keeps net/http.
package sockio

import (
	"context"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Conn is a TCP connection whose Read and Write are raw system calls. Its
// other methods are net.TCPConn's.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	// One read and one write at a time: the fields below carry a call's
	// buffer and result to the function handed to rc, made once per
	// connection so that a call allocates nothing.
	rmu    sync.Mutex
	rp     []byte
	rn     int
	rerr   syscall.Errno
	readF  func(uintptr) bool
	peekF  func(uintptr) bool
	peekB  [1]byte
	peeked bool

	wmu    sync.Mutex
	wp     []byte
	wn     int
	werr   syscall.Errno
	wshort bool
	writeF func(uintptr) bool
}

// Wrap returns c as a *Conn when it is a *net.TCPConn, else c unchanged.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	w := &Conn{TCPConn: tc, rc: rc}
	w.readF = w.read
	w.peekF = w.peek
	w.writeF = w.write
	return w
}

// read is one attempt to read into c.rp; false means the socket has nothing
// yet and the poller should wait.
func (c *Conn) read(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rp[0])), uintptr(len(c.rp)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			c.rn = int(n)
		default:
			c.rerr = e
		}
		return true
	}
}

// peek reports whether a Read would not block, leaving what there is in
// the socket; false means the poller should wait. It looks once. Called
// again, it has been woken by the poller, which wakes a reader only for
// input, the end of the stream or an error, so it says yes without
// looking: the wait then costs no system call over a Read's. Should the
// poller be wrong, the next Read finds nothing and waits as usual.
func (c *Conn) peek(fd uintptr) bool {
	if c.peeked {
		return true
	}
	c.peeked = true
	for {
		_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&c.peekB[0])), 1, syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		// Data, the peer's end of stream, or an error: the next Read
		// returns it.
		return true
	}
}

// write writes what is left of c.wp; false means the socket's buffer is
// full and the poller should wait.
func (c *Conn) write(fd uintptr) bool {
	for c.wn < len(c.wp) {
		p := c.wp[c.wn:]
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch {
		case e == 0 && n == 0:
			// write(2) on a socket takes at least one byte or fails;
			// net's own Write treats this case alike rather than loop.
			c.wshort = true
			return true
		case e == 0:
			c.wn += int(n)
		case e == syscall.EINTR:
		case e == syscall.EAGAIN:
			return false
		default:
			c.werr = e
			return true
		}
	}
	return true
}

// Read implements net.Conn as net.TCPConn does: io.EOF at the end of the
// stream, a *net.OpError otherwise.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	c.rp, c.rn, c.rerr = p, 0, 0
	err := c.rc.Read(c.readF)
	n, e := c.rn, c.rerr
	c.rp = nil
	c.rmu.Unlock()
	switch {
	case err != nil:
		return 0, opError("read", err)
	case e != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", e)}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// WaitRead waits, under the read deadline, until a Read would not block:
// there is data, the peer ended the stream, or the socket has an error. It
// reads nothing, so a connection waiting long for its next request needs
// no read buffer meanwhile (httpproxy's idle connections give theirs
// back). Its error is a wait's: the deadline, or the connection closed.
func (c *Conn) WaitRead() error {
	c.rmu.Lock()
	c.peeked = false
	err := c.rc.Read(c.peekF)
	c.rmu.Unlock()
	if err != nil {
		return opError("read", err)
	}
	return nil
}

// Write implements net.Conn: it returns once all of p is written or on an
// error, with the count written.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wmu.Lock()
	c.wp, c.wn, c.werr, c.wshort = p, 0, 0, false
	err := c.rc.Write(c.writeF)
	n, e, short := c.wn, c.werr, c.wshort
	c.wp = nil
	c.wmu.Unlock()
	switch {
	case err != nil:
		return n, opError("write", err)
	case e != 0:
		return n, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("write", e)}
	case short:
		return n, io.ErrUnexpectedEOF
	}
	return n, nil
}

// opError names a wait's error (a deadline, a closed connection) as
// net.TCPConn's Read or Write would: RawConn calls it "raw-read". A type
// assertion, not errors.As, which would allocate on this path (net/http's
// background read ends on a deadline after every request).
func opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		oe.Op = op
	}
	return err
}

// Listener wraps the connections its net.Listener accepts.
type Listener struct{ net.Listener }

// Accept implements net.Listener.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}

// DialContext wraps the connections dial makes.
func DialContext(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return Wrap(c), nil
	}
}
