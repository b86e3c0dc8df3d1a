// Package metricsapi serves SMI TrafficMetrics (metrics.smi-spec.io
// v1alpha1) as a Kubernetes aggregated API: `nodemesh metrics-api`, behind
// an APIService (daemonset/metrics-api.yaml, docs/observability.md).
//
// The figures come from the node proxies' own edge metrics, scraped from
// each proxy pod's admin port (pkg/edgestats) and kept per proxy for the
// longest window; no Prometheus server is involved. Pods, deployments,
// statefulsets and daemonsets are measured as clients (what they sent);
// services and namespaces as servers (what they received).
package metricsapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/cert"

	"github.com/nodemesh/nodemesh/pkg/edgestats"
)

// Config is the static configuration of `nodemesh metrics-api`; its field
// names are the documented options.
type Config struct {
	ConfigFile string `description:"Configuration file (YAML or TOML)." export:"true"`
	Kubeconfig string `description:"Path to a kubeconfig; empty means $KUBECONFIG, then ~/.kube/config, then the in-cluster service account." export:"true"`

	MeshNamespace string `description:"Namespace of the node proxy pods to scrape." export:"true"`
	ListenAddress string `description:"IP address to serve on; empty means all." export:"true"`
	Port          int    `description:"HTTPS port of the API (the APIService's Service targets it)." export:"true"`
	TLSCertFile   string `description:"Serving certificate (PEM); empty means a self-signed one made at start (set insecureSkipTLSVerify on the APIService, or give a certificate and its caBundle)." export:"true"`
	TLSKeyFile    string `description:"Private key of tls-cert-file." export:"true"`

	ScrapeInterval time.Duration `description:"How often every proxy's /metrics is read." export:"true"`
	Window         time.Duration `description:"Window of the TrafficMetrics when the request names none (?window=)." export:"true"`
	MaxWindow      time.Duration `description:"Longest window a request may ask for; proxy samples are kept this long." export:"true"`
	AuthzCacheTTL  time.Duration `description:"How long an authorization answer (SubjectAccessReview) is reused for the same user and resource." export:"true"`
	LogLevel       string        `description:"Log level: debug, info, warn or error." export:"true"`
}

// DefaultConfig returns the defaults of every option.
func DefaultConfig() Config {
	return Config{
		MeshNamespace:  "nodemesh",
		Port:           8443,
		ScrapeInterval: 5 * time.Second,
		Window:         30 * time.Second, // the SMI SDK's default window
		MaxWindow:      10 * time.Minute,
		AuthzCacheTTL:  10 * time.Second,
		LogLevel:       "info",
	}
}

// Validate reports every invalid option at once.
func (c Config) Validate() error {
	var errs []error
	if c.MeshNamespace == "" {
		errs = append(errs, errors.New("mesh-namespace is required"))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: want 0-65535", c.Port))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("set both tls-cert-file and tls-key-file, or neither"))
	}
	if c.ScrapeInterval <= 0 {
		errs = append(errs, errors.New("scrape-interval must be positive"))
	}
	if c.Window <= 0 || c.Window > c.MaxWindow {
		errs = append(errs, fmt.Errorf("window %s: want more than 0 and at most max-window %s", c.Window, c.MaxWindow))
	}
	if c.AuthzCacheTTL < 0 {
		errs = append(errs, errors.New("authz-cache-ttl must not be negative"))
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(c.LogLevel))); err != nil {
		errs = append(errs, fmt.Errorf("log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// Server is a running metrics API.
type Server struct {
	cfg       Config
	log       *slog.Logger
	kube      kubernetes.Interface
	collector *Collector
	authn     *authenticator
	handler   http.Handler
	ln        net.Listener
}

// New builds the server; Run serves.
func New(cfg Config, rc *rest.Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel)))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: max(cfg.ScrapeInterval, 2*time.Second), Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1}}
	s := &Server{cfg: cfg, log: log, kube: kube, authn: &authenticator{kube: kube}}
	s.collector = &Collector{
		Targets: func(ctx context.Context) ([]edgestats.Target, error) {
			pods, err := edgestats.ProxyPods(ctx, kube, cfg.MeshNamespace)
			if err != nil {
				return nil, err
			}
			return edgestats.URLTargets(edgestats.PodURLs(pods), client), nil
		},
		Interval:  cfg.ScrapeInterval,
		MaxWindow: cfg.MaxWindow,
		Log:       log,
	}
	s.handler = &handler{
		collector: s.collector, authn: s.authn, authz: &authorizer{kube: kube, ttl: cfg.AuthzCacheTTL},
		defaultWindow: cfg.Window, maxWindow: cfg.MaxWindow, log: log,
	}
	return s, nil
}

// Listen opens the HTTPS listener (Run does when it was not called) and
// returns its address.
func (s *Server) Listen() (net.Addr, error) {
	if s.ln == nil {
		ln, err := net.Listen("tcp", net.JoinHostPort(s.cfg.ListenAddress, strconv.Itoa(s.cfg.Port)))
		if err != nil {
			return nil, err
		}
		s.ln = ln
	}
	return s.ln.Addr(), nil
}

// Run reads the aggregation layer's settings, then scrapes the proxies and
// serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	if _, err := s.Listen(); err != nil {
		return err
	}
	defer s.ln.Close()
	certificate, err := s.certificate()
	if err != nil {
		return err
	}
	// The settings may not be published yet when the apiserver is young.
	err = wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := s.authn.load(ctx); err != nil {
			s.log.Warn("waiting for the aggregation layer's settings", "error", err)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	go wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := s.authn.load(ctx); err != nil {
			s.log.Warn("refreshing the aggregation layer's settings", "error", err)
		}
	}, time.Minute)
	go s.collector.Run(ctx)

	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{certificate},
			// The front proxy's certificate is checked per request against
			// the requestheader CA current at that time (auth.go).
			ClientAuth: tls.RequestClientCert,
		},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(s.ln, "", "") }()
	s.log.Info("metrics API serving", "address", s.ln.Addr().String(), "group", group+"/"+version)
	select {
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	case err := <-errc:
		return err
	}
}

// certificate loads the serving certificate or makes a self-signed one.
func (s *Server) certificate() (tls.Certificate, error) {
	if s.cfg.TLSCertFile != "" {
		return tls.LoadX509KeyPair(s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
	}
	host := "nodemesh-metrics-api." + s.cfg.MeshNamespace + ".svc"
	certPEM, keyPEM, err := cert.GenerateSelfSignedCertKey(host, nil, []string{"nodemesh-metrics-api", host + ".cluster.local"})
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("self-signed certificate: %w", err)
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}
