// Command openloop measures latency at a fixed request rate, open loop: the
// schedule is fixed in advance (request i is due at start + i/rate, on
// keep-alive connection i mod conns) and each request is timed from when it
// was due, not from when it was sent, so a stall delays the requests behind
// it and shows in their latency (no coordinated omission).
//
// Every sample is kept and percentiles are exact (nearest rank). GC is off:
// the samples are preallocated and nothing else allocates per request.
//
// Waiting: Go's timers sleep with millisecond granularity when the process
// is idle (the netpoller waits in whole milliseconds), which would add up to
// 1 ms to every sample. Each connection instead waits on its own timerfd,
// armed at the absolute due time; the netpoller wakes as soon as it fires.
//
// Output: one JSON object on stdout. With -dump FILE, also every measured
// request as a line "due latency": its due time in CLOCK_MONOTONIC
// nanoseconds, the clock `perf record -k CLOCK_MONOTONIC` stamps its events
// with, and its latency in nanoseconds (-1: failed, -2: never sent), so that
// slow requests can be lined up with a trace of the proxy's core.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// result is what openloop prints.
type result struct {
	Rate      int     `json:"rate"`
	Conns     int     `json:"conns"`
	Measured  int     `json:"measured"`
	Errors    int64   `json:"errors"`
	Late      int     `json:"late"` // due requests never sent before the deadline
	P50us     float64 `json:"p50_us"`
	P99us     float64 `json:"p99_us"`
	P999us    float64 `json:"p999_us"`
	MaxUs     float64 `json:"max_us"`
	AchievedS float64 `json:"achieved_rps"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "server address")
	host := flag.String("host", "", "Host header (default: addr)")
	path := flag.String("path", "/", "request path")
	rate := flag.Int("rate", 2000, "requests per second")
	conns := flag.Int("conns", 16, "keep-alive connections")
	duration := flag.Duration("duration", 10*time.Second, "measured time")
	warmup := flag.Duration("warmup", time.Second, "time at the same rate before measuring")
	dump := flag.String("dump", "", "file for every measured request's due time (CLOCK_MONOTONIC ns) and latency (ns)")
	flag.Parse()
	debug.SetGCPercent(-1)
	if *host == "" {
		*host = *addr
	}
	req := []byte(fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: nodemesh-openloop\r\n\r\n", *path, *host))

	interval := time.Second / time.Duration(*rate)
	skip := int(*warmup / interval)
	total := skip + int(*duration/interval)
	samples := make([]int64, total) // ns from due time to full response; -1 = failed
	for i := range samples {
		samples[i] = -2 // never sent
	}
	start := monoNow() + int64(50*time.Millisecond)
	deadline := time.Now().Add(*warmup + *duration + 10*time.Second)

	var errs atomic.Int64
	var wg sync.WaitGroup
	for c := 0; c < *conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := newWaiter()
			if err != nil {
				log.Fatal(err)
			}
			defer w.close()
			var cl *httpConn
			for i := c; i < total; i += *conns {
				due := start + int64(i)*int64(interval)
				if time.Now().After(deadline) {
					return
				}
				w.until(due)
				if cl == nil {
					if cl, err = dial(*addr, deadline); err != nil {
						errs.Add(1)
						samples[i] = -1
						cl = nil
						continue
					}
				}
				keepAlive, err := cl.roundTrip(req)
				if err != nil {
					errs.Add(1)
					samples[i] = -1
					cl.c.Close()
					cl = nil
					continue
				}
				samples[i] = monoNow() - due
				if !keepAlive {
					// The server closes; the next request on this
					// connection pays for a new one, as a client's would.
					cl.c.Close()
					cl = nil
				}
			}
			if cl != nil {
				cl.c.Close()
			}
		}()
	}
	wg.Wait()

	if *dump != "" {
		if err := writeDump(*dump, start, int64(interval), skip, samples); err != nil {
			log.Fatal(err)
		}
	}
	res := result{Rate: *rate, Conns: *conns, Errors: errs.Load()}
	lat := make([]int64, 0, total-skip)
	for _, s := range samples[skip:] {
		switch {
		case s >= 0:
			lat = append(lat, s)
		case s == -2:
			res.Late++
		}
	}
	slices.Sort(lat)
	res.Measured = len(lat)
	if len(lat) > 0 {
		res.P50us = us(rank(lat, 0.50))
		res.P99us = us(rank(lat, 0.99))
		res.P999us = us(rank(lat, 0.999))
		res.MaxUs = us(lat[len(lat)-1])
		res.AchievedS = float64(len(lat)) / duration.Seconds()
	}
	json.NewEncoder(os.Stdout).Encode(res)
	if res.Errors > 0 || res.Late > 0 {
		os.Exit(1)
	}
}

// writeDump writes the measured requests (samples[skip:]) to path, a line
// each: the due time of request i is start + i*interval.
func writeDump(path string, start, interval int64, skip int, samples []int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for i := skip; i < len(samples); i++ {
		fmt.Fprintf(w, "%d %d\n", start+int64(i)*interval, samples[i])
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// rank returns the nearest-rank q-quantile of sorted.
func rank(sorted []int64, q float64) int64 {
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func us(ns int64) float64 { return float64(ns) / 1e3 }

// monoNow reads CLOCK_MONOTONIC, the clock the timerfds use.
func monoNow() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// waiter sleeps until an absolute CLOCK_MONOTONIC time through a timerfd
// that the Go netpoller watches.
type waiter struct {
	fd  int
	f   *os.File
	buf [8]byte
}

func newWaiter() (*waiter, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// A non-blocking fd makes os.NewFile return a pollable File.
	return &waiter{fd: fd, f: os.NewFile(uintptr(fd), "timerfd")}, nil
}

func (w *waiter) until(due int64) {
	if due <= monoNow() {
		return
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(due)}
	if err := unix.TimerfdSettime(w.fd, unix.TFD_TIMER_ABSTIME, &spec, nil); err != nil {
		log.Fatal(err)
	}
	w.f.Read(w.buf[:])
}

func (w *waiter) close() { w.f.Close() }

// httpConn is a minimal HTTP/1.1 keep-alive client: it writes a prepared
// request and reads one response (Content-Length or chunked body).
type httpConn struct {
	c net.Conn
	r *bufio.Reader
}

func dial(addr string, deadline time.Time) (*httpConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(deadline)
	return &httpConn{c: c, r: bufio.NewReaderSize(c, 16<<10)}, nil
}

// roundTrip sends req and reads the response; keepAlive is false when the
// server closes the connection after it.
func (h *httpConn) roundTrip(req []byte) (keepAlive bool, err error) {
	if _, err := h.c.Write(req); err != nil {
		return false, err
	}
	return readResponse(h.r)
}
