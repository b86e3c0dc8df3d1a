package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/traefik/paerser/cli"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nodemesh/nodemesh/pkg/cmdline"
	"github.com/nodemesh/nodemesh/pkg/dns"
)

// dnsConfig is the static configuration of "nodemesh dns patch" and
// "nodemesh dns restore".
type dnsConfig struct {
	ConfigFile    string   `description:"Configuration file (YAML or TOML)." export:"true"`
	Kubeconfig    string   `description:"Path to a kubeconfig; empty means $KUBECONFIG, ~/.kube/config, then the in-cluster service account." export:"true"`
	DNSNamespace  string   `description:"Namespace of the cluster DNS Deployment and its ConfigMaps." export:"true"`
	MeshNamespace string   `description:"Namespace of the shadow services." export:"true"`
	Domain        string   `description:"Mesh domain: name.namespace.<domain> resolves to the shadow service." export:"true"`
	Aliases       []string `description:"More domains served like the mesh domain (traefik.mesh, maesh)." export:"true"`
	ClusterDomain string   `description:"The cluster's DNS domain." export:"true"`
	KubeDNSStubIP string   `description:"kube-dns only: ClusterIP of a CoreDNS the mesh runs, which kube-dns forwards the mesh domains to." export:"true"`
}

func defaultDNSConfig() *dnsConfig {
	return &dnsConfig{
		DNSNamespace:  "kube-system",
		MeshNamespace: dns.DefaultMeshNamespace,
		Domain:        dns.DefaultDomain,
		ClusterDomain: dns.DefaultClusterDomain,
	}
}

// newDNSCommand returns "nodemesh dns" with its two subcommands. Both share
// one configuration struct (only one runs per process); it is also the dns
// command's Configuration so that main normalises its environment variables.
func newDNSCommand() *cli.Command {
	cfg := defaultDNSConfig()
	dnsCmd := &cli.Command{
		Name:          "dns",
		Description:   "add the mesh domains to the cluster DNS, or remove them",
		Configuration: cfg,
		Run: func([]string) error {
			_ = printDNSHelp(os.Stdout)
			return fmt.Errorf("a subcommand is required: patch or restore")
		},
		CustomHelpFunc: func(w io.Writer, _ *cli.Command) error { return printDNSHelp(w) },
	}
	sub := []*cli.Command{
		dnsSubcommand("patch", "add the mesh server blocks to CoreDNS (or stubDomains to kube-dns); nothing is written when they are already there", cfg, runDNSPatch),
		dnsSubcommand("restore", "remove exactly what patch added, keeping every other edit", cfg, runDNSRestore),
	}
	for _, c := range sub {
		// AddCommand fails only when a child is named like its parent.
		_ = dnsCmd.AddCommand(c)
	}
	return dnsCmd
}

// dnsSubcommand builds "dns <name>": its file configuration is looked for
// under the dns command's paths, and its help names "dns <name>".
func dnsSubcommand(name, description string, cfg *dnsConfig, run func(context.Context, *dnsConfig) error) *cli.Command {
	c := cmdline.New(name, description, cfg, func(ctx context.Context) error { return run(ctx, cfg) })
	for _, r := range c.Resources {
		if fl, ok := r.(*cli.FileLoader); ok {
			fl.BasePaths = []string{"/etc/nodemesh/dns", "./nodemesh-dns"}
		}
	}
	c.CustomHelpFunc = func(w io.Writer, c *cli.Command) error {
		named := *c
		named.Name = "dns " + c.Name
		return cmdline.PrintHelp(w, &named)
	}
	return c
}

func printDNSHelp(w io.Writer) error {
	fmt.Fprintln(w, "nodemesh dns: add the mesh domains to the cluster DNS, or remove them")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: nodemesh dns patch|restore [--option=value ...]")
	fmt.Fprintln(w, "  patch    add the mesh server blocks to CoreDNS (or stubDomains to kube-dns)")
	fmt.Fprintln(w, "  restore  remove exactly what patch added")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Options: nodemesh dns patch --help")
	return nil
}

// newDNSPatcher builds the Patcher the configuration describes.
func newDNSPatcher(cfg *dnsConfig) (*dns.Patcher, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = cfg.Kubeconfig
	restConfig, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration: %w", err)
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}
	var aliases []string
	for _, a := range cfg.Aliases {
		// "--aliases=traefik.mesh,maesh" and repeated flags both work.
		aliases = append(aliases, strings.Split(a, ",")...)
	}
	return dns.NewPatcher(dns.PatcherOptions{
		Client:    client,
		Namespace: cfg.DNSNamespace,
		Options: dns.Options{
			MeshNamespace: cfg.MeshNamespace,
			Domain:        cfg.Domain,
			Aliases:       aliases,
			ClusterDomain: cfg.ClusterDomain,
		},
		KubeDNSStubIP: cfg.KubeDNSStubIP,
	})
}

// runDNSPatch patches once. Hashed shadow names get their exact rules from
// the controller (--patch-dns); here they are read from the shadow services
// already in the mesh namespace, so a manual patch does not drop them.
func runDNSPatch(ctx context.Context, cfg *dnsConfig) error {
	p, err := newDNSPatcher(cfg)
	if err != nil {
		return err
	}
	rules, err := p.ShadowRules(ctx)
	if err != nil {
		return err
	}
	for _, e := range p.SetExactRules(rules) {
		fmt.Fprintln(os.Stderr, "nodemesh dns patch: skipped:", e)
	}
	res, err := p.Patch(ctx)
	if err != nil {
		return err
	}
	printResult(os.Stdout, "patch", res)
	return nil
}

func runDNSRestore(ctx context.Context, cfg *dnsConfig) error {
	p, err := newDNSPatcher(cfg)
	if err != nil {
		return err
	}
	res, err := p.Restore(ctx)
	if err != nil {
		return err
	}
	printResult(os.Stdout, "restore", res)
	return nil
}

func printResult(w io.Writer, what string, res dns.Result) {
	if !res.Changed {
		fmt.Fprintf(w, "%s: %s already as wanted; nothing written\n", what, res.Provider)
		return
	}
	fmt.Fprintf(w, "%s: %s: wrote %s\n", what, res.Provider, strings.Join(res.Written, ", "))
	switch {
	case res.RolledOut:
		fmt.Fprintln(w, "the DNS pods restart to load it (no reload plugin)")
	case res.Provider == dns.CoreDNS:
		fmt.Fprintln(w, "CoreDNS's reload plugin loads it once the kubelet has updated the mounted ConfigMap (usually within 1-2 minutes)")
	default:
		fmt.Fprintln(w, "kube-dns re-reads its ConfigMap by itself")
	}
}
