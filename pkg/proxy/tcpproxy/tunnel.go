package tcpproxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// chunk bounds one io.Copy run so that byte counters and the idle clock move
// during long transfers. io.Copy from an *io.LimitedReader over a
// *net.TCPConn into a *net.TCPConn still uses splice on Linux.
const chunk = 1 << 20

// errIdle ends a tunnel that moved no byte in either direction for the idle
// timeout.
var errIdle = errors.New("idle timeout")

// aLongTimeAgo is a deadline in the past: setting it wakes a blocked copy.
var aLongTimeAgo = time.Unix(1, 0)

// tunnel copies bytes both ways between a client and a backend connection,
// with half-close: when one side stops sending (EOF), the proxy closes the
// write side towards the other and keeps copying the other way.
type tunnel struct {
	idle  time.Duration
	start time.Time
	// last is when a byte last moved either way, in nanoseconds since start.
	last atomic.Int64
	up   half // client -> backend
	down half // backend -> client
}

// half is one direction of a tunnel.
type half struct {
	src, dst *net.TCPConn
	bytes    prometheus.Counter
	done     atomic.Bool
	// poked is set by the other half when it found the tunnel quiet: this
	// half then decides, once its running copy returns with the count of
	// bytes it moved, whether the tunnel is idle.
	poked atomic.Bool
}

func newTunnel(client, backend *net.TCPConn, idle time.Duration, m routeMetrics) *tunnel {
	return &tunnel{
		idle:  idle,
		start: time.Now(),
		up:    half{src: client, dst: backend, bytes: m.toBackend},
		down:  half{src: backend, dst: client, bytes: m.toClient},
	}
}

// run copies until both directions have ended, then closes both connections.
// An error in either direction (reset, idle timeout, a connection closed by
// the Manager) closes both at once, which ends the other direction too.
func (t *tunnel) run() {
	done := make(chan struct{})
	go func() {
		t.finish(&t.up, t.pump(&t.up, &t.down))
		close(done)
	}()
	t.finish(&t.down, t.pump(&t.down, &t.up))
	<-done
	t.up.src.Close()
	t.up.dst.Close()
}

// finish ends one direction: after a clean EOF it half-closes the
// destination; after an error it closes both connections.
func (t *tunnel) finish(h *half, err error) {
	if err == nil {
		err = h.dst.CloseWrite()
	}
	if err != nil {
		t.up.src.Close()
		t.up.dst.Close()
	}
}

// pump copies h.src to h.dst until EOF (nil) or an error.
//
// Idle timeout with splice: the copy runs inside the kernel, so the proxy
// cannot see each byte. Each run has a deadline of one idle period; when it
// expires having moved nothing and no byte moved either way for that long,
// this half asks the other half to decide (poke): the other half's running
// copy returns with the count of what it moved, so a byte in flight the
// other way is never missed. A tunnel is thus closed between one and two
// idle periods after its last byte.
func (t *tunnel) pump(h, other *half) error {
	defer h.done.Store(true)
	for {
		if t.idle > 0 {
			d := time.Now().Add(t.idle)
			h.src.SetReadDeadline(d)
			h.dst.SetWriteDeadline(d)
		}
		lr := io.LimitedReader{R: h.src, N: chunk}
		n, err := io.Copy(h.dst, &lr)
		if n > 0 {
			h.bytes.Add(float64(n))
			t.last.Store(int64(time.Since(t.start)))
			h.poked.Store(false)
		}
		switch {
		case err == nil && n < chunk:
			return nil // EOF from src
		case err == nil:
			continue
		case !errors.Is(err, os.ErrDeadlineExceeded):
			return err
		case n > 0 || time.Since(t.start)-time.Duration(t.last.Load()) < t.idle:
			continue
		case other.done.Load() || h.poked.Load():
			return errIdle
		default:
			other.poked.Store(true)
			other.src.SetReadDeadline(aLongTimeAgo)
			other.dst.SetWriteDeadline(aLongTimeAgo)
		}
	}
}
