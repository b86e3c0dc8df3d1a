package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/traefik/paerser/cli"
	"k8s.io/client-go/kubernetes"

	"github.com/nodemesh/nodemesh/pkg/check"
	"github.com/nodemesh/nodemesh/pkg/controllerapi"
	"github.com/nodemesh/nodemesh/pkg/dns"
)

// checkConfig is the configuration of `nodemesh check`.
type checkConfig struct {
	ControllerAccess
	LeaseName     string        `description:"Name of the controller's leader election Lease (in the mesh namespace)." export:"true"`
	DNSNamespace  string        `description:"Namespace of the cluster DNS Deployment and its ConfigMaps." export:"true"`
	ClusterDomain string        `description:"The cluster's DNS domain." export:"true"`
	MaxClockSkew  time.Duration `description:"Largest difference allowed between this machine's clock and the apiserver's." export:"true"`
	Grace         time.Duration `description:"How long to wait before reading again when a proxy lags or a shadow service is being written (a change a moment ago is not a fault)." export:"true"`
	Output        string        `description:"Output format: text or json (-o)." export:"true"`
}

func defaultCheckConfig() *checkConfig {
	return &checkConfig{
		ControllerAccess: defaultControllerAccess(),
		LeaseName:        check.DefaultLeaseName,
		DNSNamespace:     "kube-system",
		ClusterDomain:    dns.DefaultClusterDomain,
		MaxClockSkew:     check.DefaultMaxClockSkew,
		Grace:            check.DefaultGrace,
		Output:           "text",
	}
}

// errChecksFailed makes the exit code non-zero once the report is printed.
var errChecksFailed = errors.New("some checks failed")

func newCheckCommand() *cli.Command {
	cfg := defaultCheckConfig()
	return opsCommand("check", "check that the mesh works: apiserver, SMI CRDs, controller, proxies, DNS, shadow services, port ranges, clock",
		cfg, map[string]string{"o": "output"}, func(ctx context.Context, _ []string) error { return runCheck(ctx, cfg) })
}

func runCheck(ctx context.Context, cfg *checkConfig) error {
	if cfg.Output != "text" && cfg.Output != "json" {
		return fmt.Errorf("output %q: want text or json", cfg.Output)
	}
	restConfig, err := restConfigFor(cfg.Kubeconfig)
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	server, err := check.HTTPServerInfo(restConfig)
	if err != nil {
		return err
	}
	ctrl, err := controllerClient(kube, cfg.MeshNamespace, cfg.ControllerURL, cfg.ControllerService)
	if err != nil {
		return err
	}
	var replicas func(context.Context) ([]controllerapi.Replica, error)
	if cfg.ControllerURL == "" {
		// Through the apiserver, every replica can be asked in turn.
		name, port, _ := strings.Cut(cfg.ControllerService, ":")
		svc := controllerapi.ServiceProxy{Kube: kube, Namespace: cfg.MeshNamespace, Service: name, Port: port}
		replicas = func(ctx context.Context) ([]controllerapi.Replica, error) { return controllerapi.Replicas(ctx, svc) }
	}
	report := check.Run(ctx, check.Options{
		Kube:          kube,
		Server:        server,
		Controller:    ctrl,
		Replicas:      replicas,
		MeshNamespace: cfg.MeshNamespace,
		LeaseName:     cfg.LeaseName,
		DNSNamespace:  cfg.DNSNamespace,
		ClusterDomain: cfg.ClusterDomain,
		MaxClockSkew:  cfg.MaxClockSkew,
		Grace:         cfg.Grace,
	})
	if cfg.Output == "json" {
		err = check.WriteJSON(os.Stdout, report)
	} else {
		err = check.WriteText(os.Stdout, report)
	}
	if err != nil {
		return err
	}
	if !report.OK {
		return errChecksFailed
	}
	return nil
}

// controllerClient reaches the controller at url, else through the
// apiserver's service proxy to service ("name:port") in namespace.
func controllerClient(kube kubernetes.Interface, namespace, url, service string) (*controllerapi.Client, error) {
	if url != "" {
		return controllerapi.New(controllerapi.URL{Base: url}), nil
	}
	name, port, ok := strings.Cut(service, ":")
	if !ok || name == "" || port == "" {
		return nil, fmt.Errorf("controller-service %q: want name:port", service)
	}
	return controllerapi.New(controllerapi.ServiceProxy{Kube: kube, Namespace: namespace, Service: name, Port: port}), nil
}
