// Command openloop measures latency at a fixed request rate, open loop: the
// schedule is fixed in advance (request i is due at start + i/rate) and each
// request is timed from when it was due, not from when it was sent, so a
// stall delays the requests behind it and shows in their latency (no
// coordinated omission).
//
// Several servers (-addr a,b,c) are measured in turns of -block each:
// server 1 gets every request for one block, then server 2, and so on
// round, until each has had -duration. Each server gets the full rate
// during its blocks and nothing in between, over its own keep-alive
// connections. Measured this way, the servers see the same state of the
// machine: on a shared VM that state drifts over tens of seconds (the
// direct backend's own p99 ran from 358 to 6,262 us across 10-second runs
// of one benchmark, 2026-12-07), so runs one after the other compare
// machine states as much as servers.
//
// Every sample is kept and percentiles are exact (nearest rank). GC is off:
// the samples are preallocated and nothing else allocates per request.
//
// Waiting: Go's timers sleep with millisecond granularity when the process
// is idle (the netpoller waits in whole milliseconds), which would add up to
// 1 ms to every sample. Each connection instead waits on its own timerfd,
// armed at the absolute due time; the netpoller wakes as soon as it fires.
//
// Output: a JSON object per server on stdout, a line each, in -addr order.
// With -dump FILE, also every measured request as a line "due latency" (with
// several servers, "due latency server", the server's index in -addr): its
// due time in CLOCK_MONOTONIC nanoseconds, the clock `perf record -k
// CLOCK_MONOTONIC` stamps its events with, and its latency in nanoseconds
// (-1: failed, -2: never sent), so that slow requests can be lined up with a
// trace of the proxy's core.
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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// result is what openloop prints.
type result struct {
	Addr      string  `json:"addr"`
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
	addrs := flag.String("addr", "127.0.0.1:18080", "server address, or several separated by commas, measured in turns")
	host := flag.String("host", "", "Host header (default: each server's address)")
	path := flag.String("path", "/", "request path")
	rate := flag.Int("rate", 2000, "requests per second")
	conns := flag.Int("conns", 16, "keep-alive connections to each server")
	duration := flag.Duration("duration", 10*time.Second, "measured time of each server")
	warmup := flag.Duration("warmup", time.Second, "time of each server at the same rate before measuring")
	block := flag.Duration("block", time.Second, "length of a server's turn when there are several")
	dump := flag.String("dump", "", "file for every measured request's due time (CLOCK_MONOTONIC ns) and latency (ns)")
	flag.Parse()
	debug.SetGCPercent(-1)
	targets := strings.Split(*addrs, ",")
	reqs := make([][]byte, len(targets))
	for t, addr := range targets {
		h := *host
		if h == "" {
			h = addr
		}
		reqs[t] = []byte(fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: nodemesh-openloop\r\n\r\n", *path, h))
	}

	interval := time.Second / time.Duration(*rate)
	sc := newSchedule(len(targets), *block, *warmup, *duration, interval)
	samples := make([]int64, sc.total) // ns from due time to full response; -1 = failed
	for i := range samples {
		samples[i] = -2 // never sent
	}
	start := monoNow() + int64(50*time.Millisecond)
	deadline := time.Now().Add(time.Duration(sc.total)*interval + 10*time.Second)

	var errs atomic.Int64
	var wg sync.WaitGroup
	for t := range targets {
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
				for k := c; ; k += *conns {
					i := sc.request(t, k)
					if i >= sc.total {
						break
					}
					due := start + int64(i)*int64(interval)
					if time.Now().After(deadline) {
						break
					}
					w.until(due)
					if cl == nil {
						if cl, err = dial(targets[t], deadline); err != nil {
							errs.Add(1)
							samples[i] = -1
							cl = nil
							continue
						}
					}
					keepAlive, err := cl.roundTrip(reqs[t])
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
	}
	wg.Wait()

	if *dump != "" {
		if err := writeDump(*dump, start, int64(interval), sc, samples); err != nil {
			log.Fatal(err)
		}
	}
	failed := errs.Load() > 0
	enc := json.NewEncoder(os.Stdout)
	for t, addr := range targets {
		res := result{Addr: addr, Rate: *rate, Conns: *conns}
		lat := make([]int64, 0, sc.total)
		for i := sc.skip; i < sc.total; i++ {
			if sc.target(i) != t {
				continue
			}
			switch s := samples[i]; {
			case s >= 0:
				lat = append(lat, s)
			case s == -1:
				res.Errors++
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
			res.AchievedS = float64(len(lat)) / sc.measured.Seconds()
		}
		enc.Encode(res)
		failed = failed || res.Late > 0
	}
	if failed {
		os.Exit(1)
	}
}

// schedule places the requests: request i is due at start + i*interval and
// goes to server target(i). The run is a sequence of rounds; in each round
// every server has one block of per consecutive requests, in -addr order.
// The first warm rounds are not measured.
type schedule struct {
	servers  int
	per      int           // requests in a block
	skip     int           // requests of the warm-up rounds
	total    int           // requests in all
	measured time.Duration // measured time of each server
}

func newSchedule(servers int, block, warmup, duration, interval time.Duration) schedule {
	if servers == 1 {
		// One server: no turns; blocks only cut the run in rounds.
		block = interval
	}
	per := max(int(block/interval), 1)
	rounds := func(d time.Duration) int { return int((d + block - 1) / block) } // whole blocks, rounding up
	warm, meas := rounds(warmup), rounds(duration)
	return schedule{
		servers:  servers,
		per:      per,
		skip:     warm * servers * per,
		total:    (warm + meas) * servers * per,
		measured: time.Duration(meas*per) * interval,
	}
}

// target is the server request i goes to.
func (s schedule) target(i int) int { return i / s.per % s.servers }

// request is the index of server t's k-th request.
func (s schedule) request(t, k int) int {
	return (k/s.per*s.servers+t)*s.per + k%s.per
}

// writeDump writes the measured requests to path, a line each: the due
// time of request i is start + i*interval; with several servers, the line
// ends with the index of the one it went to.
func writeDump(path string, start, interval int64, sc schedule, samples []int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for i := sc.skip; i < len(samples); i++ {
		if sc.servers > 1 {
			fmt.Fprintf(w, "%d %d %d\n", start+int64(i)*interval, samples[i], sc.target(i))
		} else {
			fmt.Fprintf(w, "%d %d\n", start+int64(i)*interval, samples[i])
		}
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
