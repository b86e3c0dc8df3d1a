// Command idleconns measures what idle keep-alive clients cost a proxy: it
// opens n connections to addr, sends one GET on each and reads the answer,
// then prints {"open": n} on stdout and holds them, idle, until it is
// killed or -hold passes. The benchmark reads the proxy's RSS meanwhile.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18100", "proxy address (loopback)")
	n := flag.Int("n", 2000, "connections")
	host := flag.String("host", "127.0.0.1", "Host header")
	hold := flag.Duration("hold", time.Minute, "the longest the connections are held")
	flag.Parse()

	deadline := time.Now().Add(*hold)
	conns := make([]net.Conn, 0, *n)
	for i := 0; i < *n; i++ {
		c, err := get(*addr, *host, deadline)
		if err != nil {
			log.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	json.NewEncoder(os.Stdout).Encode(map[string]int{"open": len(conns)})
	time.Sleep(time.Until(deadline))
	for _, c := range conns {
		c.Close()
	}
}

// get opens a connection, sends one GET and reads its answer, leaving the
// connection open and idle.
func get(addr, host string, deadline time.Time) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(deadline)
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: idleconns\r\n\r\n", host); err != nil {
		c.Close()
		return nil, err
	}
	// A small reader, not kept: only the proxy's memory is measured.
	res, err := http.ReadResponse(bufio.NewReaderSize(c, 512), nil)
	if err == nil {
		_, err = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err == nil && res.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", res.StatusCode)
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
