// Command tcpload measures TCP-mode throughput: conns workers each open a
// connection, read until EOF (the backend's TCP source sends a fixed number
// of bytes and closes), check the byte count, and start over, for a fixed
// time after a warm-up. It prints one JSON object on stdout.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type result struct {
	Conns        int     `json:"conns"`
	Completed    int64   `json:"completed"`
	Errors       int64   `json:"errors"`
	ConnsPerSec  float64 `json:"conns_per_sec"`
	MiBPerSec    float64 `json:"mib_per_sec"`
	BytesPerConn int     `json:"bytes_per_conn"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:18081", "server address")
	conns := flag.Int("c", 8, "concurrent connections")
	size := flag.Int("bytes", 1<<20, "bytes expected on each connection")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured time first")
	duration := flag.Duration("duration", 10*time.Second, "measured time")
	flag.Parse()

	var measuring atomic.Bool
	var completed, errs atomic.Int64
	stop := time.Now().Add(*warmup + *duration)
	var wg sync.WaitGroup
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			for time.Now().Before(stop) {
				n, err := fetch(*addr, buf, stop.Add(5*time.Second))
				if !measuring.Load() {
					continue
				}
				if err != nil || n != int64(*size) {
					errs.Add(1)
					continue
				}
				completed.Add(1)
			}
		}()
	}
	time.Sleep(*warmup)
	measuring.Store(true)
	begin := time.Now()
	wg.Wait()
	// Workers finish their last connection after stop; count the real span.
	elapsed := time.Since(begin).Seconds()

	res := result{Conns: *conns, Completed: completed.Load(), Errors: errs.Load(), BytesPerConn: *size}
	res.ConnsPerSec = float64(res.Completed) / elapsed
	res.MiBPerSec = res.ConnsPerSec * float64(*size) / (1 << 20)
	json.NewEncoder(os.Stdout).Encode(res)
	if res.Errors > 0 {
		os.Exit(1)
	}
}

// fetch reads one connection to EOF and returns the byte count. It reads
// with MSG_TRUNC, which makes Linux drop TCP data without copying it to
// user space: the load core then does far less work per byte than the node
// core, so the proxy, not the generator, bounds the throughput.
func fetch(addr string, buf []byte, deadline time.Time) (int64, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var total int64
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = syscall.Recvfrom(int(fd), buf, syscall.MSG_TRUNC)
			return rerr != syscall.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			log.Printf("read: %v", err)
			return total, err
		}
		if n == 0 {
			return total, nil // EOF
		}
		total += int64(n)
	}
}
