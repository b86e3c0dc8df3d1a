// Package check is `nodemesh check`: it asks the apiserver, the controller
// and the cluster DNS whether the mesh is healthy, and says for each check
// what is wrong and the one thing to do about it. Each check reads; none
// writes.
//
// Checks run in a fixed order and share what earlier ones fetched (the
// controller's readiness, topology and node status) through a run state,
// so a check whose prerequisite failed says "not checked" instead of
// repeating the same connection error.
package check

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/nodemesh/nodemesh/pkg/controller"
	"github.com/nodemesh/nodemesh/pkg/controllerapi"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

// Names of the checks, in the order they run. They are the `name` field of
// the JSON output and what docs/troubleshooting.md refers to.
const (
	NameAPIServer        = "apiserver"
	NameSMICRDs          = "smi-crds"
	NameControllerReady  = "controller-ready"
	NameControllerLeader = "controller-leader"
	NameProxies          = "proxies"
	NameDNS              = "dns"
	NameShadows          = "shadow-services"
	NamePortRanges       = "port-ranges"
	NameClockSkew        = "clock-skew"
)

// Result is the outcome of one check.
type Result struct {
	// Name is one of the Name* constants.
	Name string `json:"name"`
	// OK is true when the check passed.
	OK bool `json:"ok"`
	// Message says what was found, on one line.
	Message string `json:"message"`
	// Fix is the one-line remedy of a failed check ("" when OK).
	Fix string `json:"fix,omitempty"`
}

// Report is every check's result.
type Report struct {
	// OK is true when every check passed.
	OK     bool     `json:"ok"`
	Checks []Result `json:"checks"`
}

// ServerInfo reads the apiserver's version and the time in its Date
// header. Sent is when the request left and Received when the answer
// came, so the skew can be measured against their midpoint.
type ServerInfo struct {
	Version        string
	Date           time.Time
	Sent, Received time.Time
}

// Options configure Run.
type Options struct {
	// Kube reads nodes, leases, shadow services, CRDs and the DNS objects.
	Kube kubernetes.Interface
	// Server fetches the apiserver's version and Date (see HTTPServerInfo).
	Server func(ctx context.Context) (ServerInfo, error)
	// Controller reaches the controller API (one replica).
	Controller *controllerapi.Client
	// Replicas lists every controller replica, for the proxies check; nil
	// (or a failure) means Controller alone.
	Replicas func(ctx context.Context) ([]controllerapi.Replica, error)
	// MeshNamespace is where the controller, proxies and shadows live.
	MeshNamespace string
	// LeaseName and LeaseNamespace name the leader election Lease; ""
	// namespace means MeshNamespace.
	LeaseName, LeaseNamespace string
	// DNSNamespace holds the cluster DNS Deployment and its ConfigMaps.
	DNSNamespace string
	// ClusterDomain is the cluster's DNS domain.
	ClusterDomain string
	// MaxClockSkew is the largest difference allowed between this
	// machine's clock and the apiserver's.
	MaxClockSkew time.Duration
	// Grace is how long a check that sees a lagging proxy or a shadow
	// write in flight waits before it reads again: a table published a
	// moment ago is not stale.
	Grace time.Duration
	// Now returns this machine's time; nil means time.Now.
	Now func() time.Time
}

// Defaults.
const (
	DefaultMaxClockSkew = 30 * time.Second
	DefaultGrace        = 3 * time.Second
	DefaultLeaseName    = "nodemesh-controller"
)

// state is what one run has fetched so far, shared by the checks.
type state struct {
	o   Options
	now func() time.Time

	server    ServerInfo
	serverErr error

	ready    controller.Readiness
	readyErr error
	topo     *topology.Topology
	topoErr  error
}

// Run runs every check in order and returns the report.
func Run(ctx context.Context, o Options) Report {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxClockSkew <= 0 {
		o.MaxClockSkew = DefaultMaxClockSkew
	}
	if o.LeaseName == "" {
		o.LeaseName = DefaultLeaseName
	}
	if o.LeaseNamespace == "" {
		o.LeaseNamespace = o.MeshNamespace
	}
	s := &state{o: o, now: o.Now}
	r := Report{OK: true}
	add := func(res Result) {
		r.OK = r.OK && res.OK
		r.Checks = append(r.Checks, res)
	}
	add(s.checkAPIServer(ctx))
	s.fetchController(ctx)
	checks := []func(context.Context) Result{
		s.checkSMI,
		s.checkControllerReady,
		s.checkControllerLeader,
		s.checkProxies,
		s.checkDNS,
		s.checkShadows,
		s.checkPortRanges,
		s.checkClock,
	}
	for _, c := range checks {
		add(c(ctx))
	}
	return r
}

func pass(name, format string, args ...any) Result {
	return Result{Name: name, OK: true, Message: fmt.Sprintf(format, args...)}
}

func fail(name, fix, format string, args ...any) Result {
	return Result{Name: name, Message: fmt.Sprintf(format, args...), Fix: fix}
}

// notChecked fails a check whose prerequisite failed.
func notChecked(name, why string) Result {
	return Result{Name: name, Message: "not checked: " + why, Fix: "fix the failures above first"}
}

// apiserverDown reports whether the apiserver check failed, and why.
func (s *state) apiserverDown() (bool, string) {
	if s.serverErr != nil {
		return true, "the apiserver is unreachable"
	}
	return false, ""
}

// controllerDown reports whether the controller API could not be read.
func (s *state) controllerDown() (bool, string) {
	if s.readyErr != nil {
		return true, "the controller API is unreachable"
	}
	return false, ""
}

// WriteText prints one line per check, "✔ name: message" or
// "✘ name: message" followed by an indented fix line.
func WriteText(w io.Writer, r Report) error {
	for _, c := range r.Checks {
		mark := "✔"
		if !c.OK {
			mark = "✘"
		}
		if _, err := fmt.Fprintf(w, "%s %s: %s\n", mark, c.Name, c.Message); err != nil {
			return err
		}
		if !c.OK && c.Fix != "" {
			if _, err := fmt.Fprintf(w, "    fix: %s\n", c.Fix); err != nil {
				return err
			}
		}
	}
	summary := "all checks passed"
	if !r.OK {
		n := 0
		for _, c := range r.Checks {
			if !c.OK {
				n++
			}
		}
		summary = fmt.Sprintf("%d of %d checks failed", n, len(r.Checks))
	}
	_, err := fmt.Fprintln(w, summary)
	return err
}

// WriteJSON prints the report as one JSON document.
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
