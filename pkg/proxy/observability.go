package proxy

import (
	"fmt"
	"io"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/pkg/proxy/accesslog"
	"github.com/nodemesh/nodemesh/pkg/proxy/edges"
)

// DefaultAccessLogMaxPerSecond caps the access log by default: at about a
// microsecond of encoding per entry, 1,000 entries a second cost about
// 0.1% of a core however busy the proxy is (docs/observability.md).
const DefaultAccessLogMaxPerSecond = 1000

// observability is what the three data planes share for edge metrics and
// the access log: one source Resolver, so each table's pod index is built
// once, and one access log.
type observability struct {
	sources *edges.Resolver
	log     *accesslog.Logger // nil: no access log
	file    io.Closer         // the log file, when it is one
}

func newObservability(cfg Config, reg prometheus.Registerer) (*observability, error) {
	o := &observability{sources: new(edges.Resolver)}
	var w io.Writer
	switch cfg.AccessLog {
	case "":
		return o, nil
	case "stdout":
		w = os.Stdout
	case "stderr":
		w = os.Stderr
	default:
		f, err := os.OpenFile(cfg.AccessLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("access-log: %w", err)
		}
		w, o.file = f, f
	}
	o.log = accesslog.New(accesslog.Options{
		Writer:       w,
		SampleRatio:  cfg.AccessLogSampleRatio,
		MaxPerSecond: cfg.AccessLogMaxPerSecond,
		Registerer:   reg,
	})
	return o, nil
}

// close flushes the access log after the data planes stopped.
func (o *observability) close() error {
	if o == nil || o.log == nil {
		return nil
	}
	o.log.Close()
	if o.file != nil {
		return o.file.Close()
	}
	return nil
}

func (c Config) validateObservability() []error {
	var errs []error
	if r := c.AccessLogSampleRatio; r <= 0 || r > 1 {
		errs = append(errs, fmt.Errorf("access-log-sample-ratio %v: want more than 0, at most 1", r))
	}
	if c.AccessLogMaxPerSecond < 0 {
		errs = append(errs, fmt.Errorf("access-log-max-per-second %d: want 0 or more", c.AccessLogMaxPerSecond))
	}
	return errs
}
