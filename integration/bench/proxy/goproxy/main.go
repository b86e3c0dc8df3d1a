// Command goproxy runs the Go reverse proxies the benchmark compares
// against, each forwarding every request to one backend:
//
//	bare      net/http/httputil.ReverseProxy as it comes (a new 32 KiB copy
//	          buffer per request)
//	pool      the same with a sync.Pool BufferPool
//	oxy-pool  github.com/vulcand/oxy/v2 forward + roundrobin with the same
//	          BufferPool: the "pooled oxy forwarder" that nodemesh's routing,
//	          metrics and middleware chain is measured against
//
// Run it with GOMAXPROCS=1 on the node core (see ../run.sh).
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/vulcand/oxy/v2/forward"
	"github.com/vulcand/oxy/v2/roundrobin"
)

// bufferPool is a httputil.BufferPool over sync.Pool.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return make([]byte, 32<<10) }}}
}

func (b *bufferPool) Get() []byte  { return b.p.Get().([]byte) }
func (b *bufferPool) Put(v []byte) { b.p.Put(v) } //nolint:staticcheck // a slice header per Put is what BufferPool's API allows

func main() {
	listen := flag.String("listen", "127.0.0.1:18090", "listen address")
	backend := flag.String("backend", "http://127.0.0.1:18080", "backend URL")
	mode := flag.String("mode", "bare", "bare, pool or oxy-pool")
	flag.Parse()

	target, err := url.Parse(*backend)
	if err != nil {
		log.Fatal(err)
	}
	// Same keep-alive pool for every mode, sized for wrk's 50 connections.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 256

	var h http.Handler
	switch *mode {
	case "bare":
		rp := httputil.NewSingleHostReverseProxy(target)
		rp.Transport = transport
		h = rp
	case "pool":
		rp := httputil.NewSingleHostReverseProxy(target)
		rp.Transport = transport
		rp.BufferPool = newBufferPool()
		h = rp
	case "oxy-pool":
		fwd := forward.New(false)
		fwd.Transport = transport
		fwd.BufferPool = newBufferPool()
		lb, err := roundrobin.New(fwd)
		if err != nil {
			log.Fatal(err)
		}
		if err := lb.UpsertServer(target); err != nil {
			log.Fatal(err)
		}
		h = lb
	default:
		log.Fatalf("unknown mode %q", *mode)
	}
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	log.Fatal(srv.ListenAndServe())
}
