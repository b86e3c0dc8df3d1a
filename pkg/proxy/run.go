package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nodemesh/nodemesh/pkg/distribution"
	"github.com/nodemesh/nodemesh/pkg/gctune"
	"github.com/nodemesh/nodemesh/pkg/memtrim"
	"github.com/nodemesh/nodemesh/pkg/proxy/admin"
	"github.com/nodemesh/nodemesh/pkg/proxy/httpproxy"
	"github.com/nodemesh/nodemesh/pkg/proxy/sockio"
)

// TuneRuntime applies the GC and GOMAXPROCS settings of cfg to this
// process. It is separate from Run because it is process-wide. With a GC
// headroom, GOGC is retuned after every collection for the life of the
// process (pkg/gctune).
func TuneRuntime(cfg Config) {
	if cfg.GCHeadroom > 0 {
		gctune.Start(gctune.Options{Headroom: uint64(cfg.GCHeadroom) << 20, MinPercent: cfg.GCPercent, MaxPercent: max(cfg.GCPercent, gcMaxPercent)})
	} else {
		debug.SetGCPercent(cfg.GCPercent)
	}
	if cfg.MaxProcs > 0 {
		runtime.GOMAXPROCS(cfg.MaxProcs)
	}
}

// Listen opens the HTTP and admin listeners and returns their addresses.
// Run calls it when it has not been called.
func (p *Proxy) Listen() (httpAddr, adminAddr net.Addr, err error) {
	if p.httpL != nil {
		return p.httpL.Addr(), p.adminL.Addr(), nil
	}
	h, err := net.Listen("tcp", net.JoinHostPort(p.cfg.ListenAddress, strconv.Itoa(p.cfg.HTTPPort)))
	if err != nil {
		return nil, nil, fmt.Errorf("http listener: %w", err)
	}
	a, err := net.Listen("tcp", net.JoinHostPort(p.cfg.ListenAddress, strconv.Itoa(p.cfg.AdminPort)))
	if err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("admin listener: %w", err)
	}
	p.httpL, p.adminL = h, a
	return h.Addr(), a.Addr(), nil
}

// Run serves until ctx is done: the shared HTTP listener, the admin
// endpoint, and the table source (the controller watch or the table file).
// On return in-flight HTTP requests have had ShutdownTimeout to finish and
// every listener is closed.
func (p *Proxy) Run(ctx context.Context) error {
	if _, _, err := p.Listen(); err != nil {
		return err
	}
	defer p.Close()
	httpSrv := httpproxy.NewServer(p.http, httpproxy.ServerOptions{
		ReadHeaderTimeout: p.cfg.ReadHeaderTimeout,
		IdleTimeout:       p.cfg.ClientIdleTimeout,
		StdServer:         p.cfg.StdHTTPServer,
	})
	var draining atomic.Bool
	adminSrv := &http.Server{
		Handler:           admin.Handler(admin.Options{Applied: p.Applied, Draining: draining.Load, Gatherer: p.reg, State: p.State, Pprof: p.cfg.Pprof}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	errc := make(chan error, 3)
	httpL := p.httpL
	if p.cfg.RawSocketIO {
		httpL = sockio.Listener{Listener: httpL}
	}
	go func() { errc <- serve("http", httpSrv, httpL) }()
	go func() { errc <- serve("admin", adminSrv, p.adminL) }()

	// The source outlives ctx during the drain; it stops with stopSource.
	srcCtx, stopSource := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSource()
	go func() { errc <- p.runSource(srcCtx) }()
	p.log.Info("proxy started", "node", p.cfg.NodeName(), "http", p.httpL.Addr().String(), "admin", p.adminL.Addr().String())
	if p.cfg.TrimStartupPages {
		stopTrim := memtrim.ExecutableAfter(trimDelay, memtrim.Unmap, p.log.Info)
		defer stopTrim()
	}

	var err error
	select {
	case <-ctx.Done():
		// Lame duck: fail /ready but keep serving (and keep following the
		// controller) for ShutdownDelay, so the pod leaves the shadow
		// services' endpoints before a single new connection is refused.
		if p.cfg.ShutdownDelay > 0 && p.Applied() != nil {
			draining.Store(true)
			p.log.Info("draining before shutdown", "delay", p.cfg.ShutdownDelay.String())
			select {
			case <-time.After(p.cfg.ShutdownDelay):
			case err = <-errc:
			}
		}
	case err = <-errc:
	}
	stopSource()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), p.cfg.ShutdownTimeout)
	defer cancel()
	if serr := httpSrv.Shutdown(shutdownCtx); serr != nil {
		httpSrv.Close()
	}
	adminSrv.Close()
	return err
}

// trimDelay is how long after start the executable's start-up pages are
// dropped: by then the first table has usually been applied, so the pages
// that path needed are not dropped and faulted back at once.
const trimDelay = 2 * time.Second

func serve(name string, s interface{ Serve(net.Listener) error }, l net.Listener) error {
	if err := s.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s server: %w", name, err)
	}
	return nil
}

// runSource feeds tables to Apply until ctx is done.
func (p *Proxy) runSource(ctx context.Context) error {
	if p.cfg.TableFile != "" {
		w := &fileWatcher{path: p.cfg.TableFile, interval: p.cfg.TablePollInterval, apply: p.applyEncoded, log: p.log}
		w.run(ctx)
		return nil
	}
	c, err := distribution.NewClient(distribution.ClientOptions{
		URL:    p.cfg.ControllerURL,
		Node:   p.cfg.NodeName(),
		Wait:   p.cfg.WatchWait,
		Logger: p.log.With("source", "controller"),
		Decoded: func(d time.Duration) {
			p.metrics.decode.Observe(d.Seconds())
		},
	})
	if err != nil {
		return err
	}
	return c.Run(ctx, p.Apply)
}
