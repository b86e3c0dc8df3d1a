// Command backend is the benchmark's backend: an HTTP/1.1 server answering
// every request with 200 and a 100-byte body (the anchors' backend), and
// optionally a TCP source that writes a fixed number of bytes on each
// connection and then closes it (the TCP-mode benchmark).
//
// Run it with GOMAXPROCS=1 on the node core (see ../run.sh).
package main

import (
	"bytes"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"time"
)

func main() {
	httpAddr := flag.String("http", "127.0.0.1:18080", "HTTP listen address")
	tcpAddr := flag.String("tcp", "", "TCP source listen address; empty disables it")
	tcpBytes := flag.Int("tcp-bytes", 1<<20, "bytes written on each TCP connection")
	flag.Parse()

	if *tcpAddr != "" {
		ln, err := net.Listen("tcp", *tcpAddr)
		if err != nil {
			log.Fatal(err)
		}
		go serveTCP(ln, bytes.Repeat([]byte("n"), *tcpBytes))
	}

	body := bytes.Repeat([]byte("x"), 100)
	length := strconv.Itoa(len(body))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Drain a request body so keep-alive survives POSTs too.
		io.Copy(io.Discard, r.Body)
		w.Header()["Content-Type"] = []string{"text/plain"}
		w.Header()["Content-Length"] = []string{length}
		w.Write(body)
	})
	srv := &http.Server{Addr: *httpAddr, Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	log.Fatal(srv.ListenAndServe())
}

// serveTCP writes payload on every accepted connection, then closes it.
// net.Conn.Write of one buffer keeps this side cheap, so the proxy's cost
// dominates.
func serveTCP(ln net.Listener, payload []byte) {
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			c.Write(payload)
		}()
	}
}
