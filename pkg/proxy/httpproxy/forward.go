package httpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"github.com/vulcand/oxy/v2/forward"

	"github.com/nodemesh/nodemesh/pkg/proxy/sockio"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// bufferSize is the copy buffer of one proxied body. httputil's default is
// 32 KiB allocated per request; pooled, a handful serve every request.
const bufferSize = 32 << 10

// bufferPool is the httputil.BufferPool shared by every forwarder. Without
// it each request allocates a 32 KiB buffer (see the anchors: +44-48%
// throughput with a pool). sync.Pool holds pointers, and BufferPool hands
// out slices: a pointer per Put would be an allocation per request, so the
// emptied pointers are pooled too.
type bufferPool struct{ bufs, ptrs sync.Pool }

func newBufferPool() *bufferPool { return &bufferPool{} }

// Get returns a copy buffer.
func (b *bufferPool) Get() []byte {
	p, _ := b.bufs.Get().(*[]byte)
	if p == nil {
		return make([]byte, bufferSize)
	}
	buf := *p
	*p = nil
	b.ptrs.Put(p)
	return buf
}

// Put returns a copy buffer.
func (b *bufferPool) Put(buf []byte) {
	if cap(buf) < bufferSize {
		return
	}
	p, _ := b.ptrs.Get().(*[]byte)
	if p == nil {
		p = new([]byte)
	}
	*p = buf[:bufferSize]
	b.bufs.Put(p)
}

// forwarders holds one oxy forwarder per backend scheme. They are shared by
// every route: a forwarder holds no per-route state, and sharing keeps one
// connection pool per scheme across table reloads.
type forwarders struct {
	byScheme   map[table.Scheme]*httputil.ReverseProxy
	handlers   map[table.Scheme]http.Handler // what routes forward to
	transports []interface{ CloseIdleConnections() }
}

func newForwarders(opts *Options) *forwarders {
	pool := newBufferPool()
	f := &forwarders{byScheme: map[table.Scheme]*httputil.ReverseProxy{}, handlers: map[table.Scheme]http.Handler{}}
	for _, s := range []table.Scheme{table.SchemeHTTP, table.SchemeHTTPS, table.SchemeH2C} {
		d := &net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}
		dial := d.DialContext
		if !opts.StdSocketIO {
			dial = sockio.DialContext(dial)
		}
		tr := newTransport(s, dial, opts)
		var rt http.RoundTripper = tr
		var h1 *h1Transport
		if s == table.SchemeHTTP {
			// Plain HTTP/1.1 GETs (most mesh traffic) skip net/http's
			// per-connection goroutines; see h1transport.go.
			h1 = newH1Transport(tr, dial, opts.MaxIdleConnsPerHost, opts.IdleConnTimeout, opts.ResponseHeaderTimeout)
			rt = h1
			f.transports = append(f.transports, h1)
		} else {
			f.transports = append(f.transports, tr)
		}
		// Pass the client's Host: backends see name.ns.mesh. oxy's director
		// sets X-Forwarded-Proto/-Host/-Port/-Server (the pod's hostname)
		// and X-Real-Ip, keeping values already on the request: in a mesh
		// the client is often an ingress that set them legitimately.
		// httputil appends the client to X-Forwarded-For.
		fwd := forward.New(true)
		fwd.Transport = rt
		fwd.BufferPool = pool
		fwd.ErrorHandler = errorHandler
		f.byScheme[s] = fwd
		f.handlers[s] = fwd
		if h1 != nil {
			// ... and skip the forwarder's own per-request work; see
			// h1forward.go.
			f.handlers[s] = newH1Forwarder(fwd, h1, pool)
		}
	}
	return f
}

// close drops idle backend connections.
func (f *forwarders) close() {
	for _, tr := range f.transports {
		tr.CloseIdleConnections()
	}
}

// newTransport returns the net/http backend transport for one scheme.
func newTransport(s table.Scheme, dial dialFunc, opts *Options) *http.Transport {
	tr := &http.Transport{
		Proxy:                 nil, // never through an HTTP_PROXY: backends are pod IPs
		DialContext:           dial,
		MaxIdleConnsPerHost:   opts.MaxIdleConnsPerHost,
		IdleConnTimeout:       opts.IdleConnTimeout,
		ResponseHeaderTimeout: opts.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		// A proxy passes bodies through as they are: without this the
		// transport would ask for gzip and decompress it itself.
		DisableCompression: true,
	}
	switch s {
	case table.SchemeHTTPS:
		tr.ForceAttemptHTTP2 = true
		// Pods rarely carry a certificate the proxy could verify (issued
		// for a pod IP by a CA the proxy knows), so verification is off
		// unless --https-verify-backends is set. See docs/proxy.md.
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: !opts.VerifyHTTPSBackends} //nolint:gosec // documented option
	case table.SchemeH2C:
		// HTTP/2 with prior knowledge over cleartext. net/http supports it
		// natively since Go 1.24; x/net/http2/h2c is deprecated in favour
		// of this.
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return tr
}

// StatusClientClosedRequest is recorded when the client went away before
// the backend answered (nginx's convention).
const StatusClientClosedRequest = 499

// errorHandler turns a forwarding error into the answer: 504 when the
// backend timed out, 499 when the client left, 502 otherwise. Inside a
// retry it asks for another attempt instead when the error allows one.
func errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	if rs := retryStateFrom(r.Context()); rs != nil && rs.shouldRetry(r, err) {
		w.WriteHeader(statusRetry)
		return
	}
	code := errorStatus(r, err)
	if code == StatusClientClosedRequest {
		w.WriteHeader(code) // nobody reads it; metrics do
		return
	}
	if code == http.StatusGatewayTimeout {
		if body := timeoutBody(r); body != "" {
			plain(w, code, body) // the route's request timeout (timeout.go)
			return
		}
	}
	plain(w, code, http.StatusText(code)+"\n")
}

func errorStatus(r *http.Request, err error) int {
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		return StatusClientClosedRequest
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout() && !isDialError(err)) {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// isDialError reports whether err happened while connecting, so the request
// never reached a backend.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
