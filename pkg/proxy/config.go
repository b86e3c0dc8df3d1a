package proxy

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nodemesh/nodemesh/pkg/distribution"
	"github.com/nodemesh/nodemesh/pkg/proxy/httpproxy"
	"github.com/nodemesh/nodemesh/pkg/proxy/tcpproxy"
	"github.com/nodemesh/nodemesh/pkg/proxy/udpproxy"
)

// Config is the static configuration of `nodemesh proxy`. Its field names
// are the documented options (--http-port, NODEMESH_HTTP_PORT, ...);
// DefaultConfig holds the defaults. docs/proxy.md lists them.
type Config struct {
	ConfigFile string `description:"Configuration file (YAML or TOML)." export:"true"`

	Node          string `description:"Node name reported to the controller; empty means $NODEMESH_NODE (set it from the downward API, spec.nodeName), then the host name." export:"true"`
	ControllerURL string `description:"Controller API to watch the routing table from, e.g. http://nodemesh-controller.nodemesh.svc:9000. Exactly one of controller-url and table-file." export:"true"`
	TableFile     string `description:"Routing table JSON file to serve instead of watching the controller; reloaded when it changes." export:"true"`

	ListenAddress string `description:"IP address every proxy listener binds; empty means all." export:"true"`
	HTTPPort      int    `description:"Port of the shared HTTP listener." export:"true"`
	AdminPort     int    `description:"Port of /ready, /live, /config and /metrics." export:"true"`

	GCPercent  int  `description:"Go GC target percentage (GOGC), the least one set: with --gc-headroom, each collection raises it as far as the headroom needs. See docs/proxy.md for the measurement behind the defaults." export:"true"`
	GCHeadroom int  `description:"MiB the heap may always grow above what is live before the next collection (pkg/gctune): a small live heap then collects less often; 0 keeps --gc-percent fixed." export:"true"`
	MaxProcs   int  `description:"GOMAXPROCS; 0 keeps Go's default (the CPU quota or count)." export:"true"`
	Pprof      bool `description:"Serve Go's runtime profiles (net/http/pprof) under /debug/pprof/ on the admin port." export:"true"`

	RawSocketIO bool `description:"Read and write HTTP client and backend connections with raw system calls, which keep the Go scheduler's processor on the calling thread (pkg/proxy/sockio): about 11% less CPU per request. Idle client connections then also hold no buffers while they wait. Off uses Go's usual path. See docs/proxy.md." export:"true"`

	StdHTTPServer bool `description:"Serve HTTP/1 client connections with Go's net/http server instead of the proxy's own connection loop (pkg/proxy/httpproxy, Server), which uses about 12% less CPU per request. A fallback; h2c is served by net/http either way. See docs/proxy.md." export:"true"`

	TrimStartupPages bool `description:"Two seconds after start, unmap the executable's pages that start-up touched (the controller's Kubernetes code runs its initialisers in every subcommand); they stay in the page cache, and about 25 MiB less RSS. See docs/proxy.md." export:"true"`

	DialTimeout           time.Duration `description:"Timeout of a connect to an HTTP backend endpoint." export:"true"`
	ResponseHeaderTimeout time.Duration `description:"How long an HTTP backend may take to send its response headers before the client gets 504; negative means no limit." export:"true"`
	BackendIdleTimeout    time.Duration `description:"How long an idle keep-alive connection to an HTTP backend is kept." export:"true"`
	ReadHeaderTimeout     time.Duration `description:"How long a client may take to send its request headers." export:"true"`
	ClientIdleTimeout     time.Duration `description:"How long an idle client keep-alive connection is kept." export:"true"`
	VerifyHTTPSBackends   bool          `description:"Verify the certificates of https backends (pods rarely have certificates valid for their IP, so off by default)." export:"true"`
	RetryMaxBodyBytes     int64         `description:"Largest request body buffered for retries; larger or unsized bodies are never retried." export:"true"`

	TCPConnectTimeout time.Duration `description:"Timeout of one connect attempt to a TCP backend endpoint." export:"true"`
	TCPIdleTimeout    time.Duration `description:"Close a TCP connection idle in both directions this long." export:"true"`
	UDPIdleTimeout    time.Duration `description:"Expire a UDP client session idle this long." export:"true"`

	WatchWait         time.Duration `description:"Long-poll duration asked of the controller." export:"true"`
	TablePollInterval time.Duration `description:"How often table-file is checked for changes." export:"true"`
	ShutdownDelay     time.Duration `description:"After SIGTERM, how long the proxy keeps serving with /ready failing, so kube-proxy stops sending it new connections before it closes its listeners. Keep it above the readiness probe's period times its failure threshold plus kube-proxy's sync delay." export:"true"`
	ShutdownTimeout   time.Duration `description:"How long in-flight HTTP requests may finish after SIGTERM." export:"true"`
	LogLevel          string        `description:"Log level: debug, info, warn or error." export:"true"`

	EdgeMetrics           bool    `description:"Edge metrics: requests, latency, connections, bytes and datagrams by source workload, destination service and split backend (docs/observability.md)." export:"true"`
	AccessLog             string  `description:"Access log of JSON lines, one per HTTP request, TCP connection and UDP session: stdout, stderr or a file path; empty turns it off." export:"true"`
	AccessLogSampleRatio  float64 `description:"Share of requests, connections and sessions considered for the access log (every n-th), from 0 (exclusive) to 1." export:"true"`
	AccessLogMaxPerSecond int     `description:"Most access log entries written per second after sampling, so the log never slows the data plane; 0 means no cap." export:"true"`
}

// DefaultGCPercent is the default GOGC floor, Go's own. Measured end to
// end (docs/proxy.md), a fixed GOGC 400 cost 11 MiB of RSS with a small
// table and 31 MiB with 1,000 services: the proxy runs on every node.
const DefaultGCPercent = 100

// DefaultGCHeadroom is the default --gc-headroom in MiB. With a small
// table it sets GOGC near 200: at 2,000 requests a second, p99 latency went
// from 1.25 to 0.94 ms (medians of five runs) and RSS after load from 20.8
// to 23.1 MiB (docs/proxy.md). 6 MiB has since measured 23.1–24.0 MiB of
// RSS, under the proxy's 25 MiB budget but with little margin, and no
// resolved p99 gain over 4 (docs/proxy.md); 8 MiB is over the budget. A
// large table's live heap is above the headroom, so it keeps GOGC 100.
const DefaultGCHeadroom = 4

// gcMaxPercent is the most GOGC the headroom may set.
const gcMaxPercent = 800

// DefaultConfig returns the defaults of every option.
func DefaultConfig() Config {
	return Config{
		HTTPPort:              7000,
		AdminPort:             7001,
		GCPercent:             DefaultGCPercent,
		GCHeadroom:            DefaultGCHeadroom,
		RawSocketIO:           true,
		TrimStartupPages:      true,
		DialTimeout:           httpproxy.DefaultDialTimeout,
		ResponseHeaderTimeout: httpproxy.DefaultResponseHeaderTimeout,
		BackendIdleTimeout:    httpproxy.DefaultIdleConnTimeout,
		ReadHeaderTimeout:     10 * time.Second,
		ClientIdleTimeout:     2 * time.Minute,
		RetryMaxBodyBytes:     httpproxy.DefaultRetryMaxBodyBytes,
		TCPConnectTimeout:     tcpproxy.DefaultConnectTimeout,
		TCPIdleTimeout:        tcpproxy.DefaultIdleTimeout,
		UDPIdleTimeout:        udpproxy.DefaultIdleTimeout,
		WatchWait:             distribution.DefaultWait,
		TablePollInterval:     time.Second,
		ShutdownDelay:         5 * time.Second,
		ShutdownTimeout:       15 * time.Second,
		LogLevel:              "info",
		EdgeMetrics:           true,
		AccessLogSampleRatio:  1,
		AccessLogMaxPerSecond: DefaultAccessLogMaxPerSecond,
	}
}

// NodeName returns the node name to report: Node, else $NODEMESH_NODE, else
// the host name. paerser reads the environment only when no flag is given,
// so the downward-API variable is honoured here as well.
func (c Config) NodeName() string {
	if c.Node != "" {
		return c.Node
	}
	if n := os.Getenv("NODEMESH_NODE"); n != "" {
		return n
	}
	h, _ := os.Hostname()
	return h
}

// Validate reports every invalid option at once.
func (c Config) Validate() error {
	var errs []error
	if (c.ControllerURL == "") == (c.TableFile == "") {
		errs = append(errs, errors.New("set exactly one of controller-url and table-file"))
	}
	if c.HTTPPort < 0 || c.HTTPPort > 65535 {
		errs = append(errs, fmt.Errorf("http-port %d: want 0-65535", c.HTTPPort))
	}
	if c.AdminPort < 0 || c.AdminPort > 65535 {
		errs = append(errs, fmt.Errorf("admin-port %d: want 0-65535", c.AdminPort))
	}
	if c.HTTPPort == c.AdminPort && c.HTTPPort != 0 {
		errs = append(errs, fmt.Errorf("http-port and admin-port are both %d", c.HTTPPort))
	}
	if c.GCPercent == 0 || c.GCPercent < -1 {
		errs = append(errs, fmt.Errorf("gc-percent %d: want a positive percentage, or -1 to turn the GC off", c.GCPercent))
	}
	if c.MaxProcs < 0 {
		errs = append(errs, fmt.Errorf("max-procs %d: want 0 or more", c.MaxProcs))
	}
	if c.TablePollInterval <= 0 && c.TableFile != "" {
		errs = append(errs, errors.New("table-poll-interval must be positive"))
	}
	errs = append(errs, c.validateObservability()...)
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
