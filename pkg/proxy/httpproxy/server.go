package httpproxy

import (
	"io"
	"log"
	"net/http"
	"time"
)

// ServerOptions are the client-side settings of the shared listener.
type ServerOptions struct {
	// ReadHeaderTimeout bounds reading a request's headers (slowloris).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a client keep-alive connection idle this long.
	IdleTimeout time.Duration
}

// NewServer returns the http.Server of the shared listener: HTTP/1.1, and
// HTTP/2 over cleartext with prior knowledge (h2c), both on one port. There
// is no read or write timeout on the whole exchange: uploads, streams and
// WebSockets may legitimately last long; the backend's timeouts govern.
func NewServer(h http.Handler, opts ServerOptions) *http.Server {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	// net/http serves h2c natively since Go 1.24; x/net/http2/h2c is
	// deprecated in favour of this.
	p.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:           h,
		Protocols:         p,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       opts.IdleTimeout,
		// Errors such as a client hanging up mid-body are routine for a
		// proxy; net/http would log each one.
		ErrorLog: discardLog,
	}
}

var discardLog = log.New(io.Discard, "", 0)
