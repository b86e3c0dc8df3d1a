package check

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/nodemesh/nodemesh/pkg/dns"
	"github.com/nodemesh/nodemesh/pkg/smidiscovery"
)

// HTTPServerInfo returns a ServerInfo reader that sends GET /version with
// the credentials of cfg. It reads the response's Date header, which the
// discovery client does not expose.
func HTTPServerInfo(cfg *rest.Config) (func(context.Context) (ServerInfo, error), error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	hc.Timeout = 10 * time.Second
	url := strings.TrimRight(cfg.Host, "/") + "/version"
	return func(ctx context.Context) (ServerInfo, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return ServerInfo{}, err
		}
		info := ServerInfo{Sent: time.Now()}
		resp, err := hc.Do(req)
		if err != nil {
			return ServerInfo{}, err
		}
		defer resp.Body.Close()
		info.Received = time.Now()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode != http.StatusOK {
			return ServerInfo{}, fmt.Errorf("GET /version: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		var v struct {
			GitVersion string `json:"gitVersion"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return ServerInfo{}, fmt.Errorf("GET /version: %w", err)
		}
		info.Version = v.GitVersion
		if info.Date, err = http.ParseTime(resp.Header.Get("Date")); err != nil {
			return ServerInfo{}, fmt.Errorf("GET /version: Date header %q: %w", resp.Header.Get("Date"), err)
		}
		return info, nil
	}, nil
}

func (s *state) checkAPIServer(ctx context.Context) Result {
	s.server, s.serverErr = s.o.Server(ctx)
	if s.serverErr != nil {
		return fail(NameAPIServer, "check the kubeconfig's server and credentials (kubectl cluster-info)",
			"unreachable: %v", s.serverErr)
	}
	return pass(NameAPIServer, "reachable, Kubernetes %s", s.server.Version)
}

// skew is the apiserver's clock minus ours, measured at the midpoint of the
// request. The Date header has a resolution of one second, so a skew under
// a second is noise.
func (s *state) skew() time.Duration {
	mid := s.server.Sent.Add(s.server.Received.Sub(s.server.Sent) / 2)
	return s.server.Date.Sub(mid.Truncate(time.Second))
}

// serverNow is the apiserver's time now, by our clock and the measured
// skew; lease expiry is judged on it, so a skewed laptop does not call a
// healthy lease expired.
func (s *state) serverNow() time.Time {
	if s.serverErr != nil {
		return s.now()
	}
	return s.now().Add(s.skew())
}

func (s *state) checkClock(context.Context) Result {
	if down, why := s.apiserverDown(); down {
		return notChecked(NameClockSkew, why)
	}
	d := s.skew()
	if d < 0 {
		d = -d
	}
	if d > s.o.MaxClockSkew {
		return fail(NameClockSkew, "synchronise the clocks (NTP, chrony) of this machine and the control plane",
			"this machine's clock is %s off the apiserver's (more than %s)", d.Round(time.Second), s.o.MaxClockSkew)
	}
	return pass(NameClockSkew, "%s off the apiserver's clock (at most %s)", d.Round(time.Second), s.o.MaxClockSkew)
}

// smiGroups are the SMI API groups the mesh reads, in display order.
var smiGroups = []string{smidiscovery.SplitGroup, smidiscovery.SpecsGroup, smidiscovery.AccessGroup}

func (s *state) checkSMI(ctx context.Context) Result {
	const fix = "install the SMI CRDs: kubectl apply --server-side -k smi/crds (docs/install.md)"
	if down, why := s.apiserverDown(); down {
		return notChecked(NameSMICRDs, why)
	}
	disc := s.o.Kube.Discovery()
	found, err := smidiscovery.Discover(disc)
	if err != nil {
		return fail(NameSMICRDs, fix, "discovery failed: %v", err)
	}
	groups, err := disc.ServerGroups()
	if err != nil {
		return fail(NameSMICRDs, fix, "discovery failed: %v", err)
	}
	var served []string
	for _, name := range smiGroups {
		for _, g := range groups.Groups {
			if g.Name != name {
				continue
			}
			var vs []string
			for _, v := range g.Versions {
				vs = append(vs, v.Version)
			}
			slices.Sort(vs)
			slices.Reverse(vs) // newest first: v1alpha4, v1alpha3, ...
			served = append(served, name+" "+strings.Join(vs, ","))
		}
	}
	if len(found.Missing) > 0 {
		return fail(NameSMICRDs, fix, "not served: %s", strings.Join(found.Missing, "; "))
	}
	msg := "served: " + strings.Join(served, "; ")
	// The controller discovers SMI again every --smi-discovery-interval
	// (30 s by default) and switches to what it finds; a difference that
	// lasts means that it cannot (its log says why) or that it only
	// discovers at start.
	if s.readyErr == nil && s.ready.SMI != nil && s.ready.SMI.Status != found.Status {
		return fail(NameSMICRDs, "wait for the controller's next SMI discovery (every 30 s by default); if this persists, its log says why, or restart it: kubectl -n "+s.o.MeshNamespace+" rollout restart deployment/nodemesh-controller",
			"%s, but the controller reads split %q, specs %q, access %q (discovered before the CRDs changed)",
			msg, s.ready.SMI.Status.Split, s.ready.SMI.Status.Specs, s.ready.SMI.Status.Access)
	}
	return pass(NameSMICRDs, "%s", msg)
}

func (s *state) checkDNS(ctx context.Context) Result {
	const fix = "nodemesh dns patch (or run the controller with --patch-dns), then wait for CoreDNS to reload"
	if down, why := s.apiserverDown(); down {
		return notChecked(NameDNS, why)
	}
	opts := dns.Options{MeshNamespace: s.o.MeshNamespace, ClusterDomain: s.o.ClusterDomain}
	if s.topo != nil {
		// The controller's options say which domains the mesh serves.
		opts.Domain, opts.Aliases = s.topo.Options.Domain, s.topo.Options.Aliases
	}
	p, err := dns.NewPatcher(dns.PatcherOptions{Client: s.o.Kube, Namespace: s.o.DNSNamespace, Options: opts})
	if err != nil {
		return fail(NameDNS, fix, "%v", err)
	}
	rules, err := p.ShadowRules(ctx)
	if err != nil {
		return fail(NameDNS, fix, "%v", err)
	}
	p.SetExactRules(rules) // a rule that cannot be written is the patch's problem, not the check's
	drift, err := p.Check(ctx)
	if err != nil {
		return fail(NameDNS, fix, "cannot read the cluster DNS configuration: %v", err)
	}
	domain := opts.Domain
	if domain == "" {
		domain = dns.DefaultDomain
	}
	if drift {
		return fail(NameDNS, fix, "the cluster DNS lacks the %q rewrite rules nodemesh needs (missing or out of date)", domain)
	}
	return pass(NameDNS, "the cluster DNS resolves name.namespace.%s (patch in place, %d exact rules)", domain, len(rules))
}
