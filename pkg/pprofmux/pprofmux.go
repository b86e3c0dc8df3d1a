// Package pprofmux registers Go's runtime profiles (net/http/pprof) on a
// ServeMux. Importing net/http/pprof alone would register them on
// http.DefaultServeMux, which neither the proxy's admin port nor the
// controller's API serves; they register them on their own mux, and only
// when asked (--pprof).
package pprofmux

import (
	"net/http"
	"net/http/pprof"
)

// Prefix is where the profiles are served.
const Prefix = "/debug/pprof/"

// Register serves the profile index and every profile under Prefix.
func Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+Prefix, pprof.Index)
	mux.HandleFunc("GET "+Prefix+"cmdline", pprof.Cmdline)
	mux.HandleFunc("GET "+Prefix+"profile", pprof.Profile)
	mux.HandleFunc("GET "+Prefix+"symbol", pprof.Symbol)
	mux.HandleFunc("GET "+Prefix+"trace", pprof.Trace)
}
