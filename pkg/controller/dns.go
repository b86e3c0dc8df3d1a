package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/nodemesh/nodemesh/pkg/dns"
	"github.com/nodemesh/nodemesh/pkg/shadow"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

// The DNS patch (--patch-dns). While this replica leads, a dns.Watcher keeps
// the mesh domains' rewrite rules in the cluster DNS: it patches at once,
// and repairs an overwrite (a managed add-on putting its Corefile back) as
// soon as the ConfigMap changes. Every rebuild hands the patcher the exact
// rules of the latest topology; a change of them is written at once. Only
// the leader writes, like the shadow Services.

// Event reasons of the DNS patch.
const (
	ReasonDNSPatched     = "DNSPatched"
	ReasonDNSDrift       = "DNSDrift"
	ReasonDNSPatchFailed = "DNSPatchFailed"
)

// dnsNamespace holds the cluster DNS.
const dnsNamespace = metav1.NamespaceSystem

// dnsKeeper runs the DNS patch while this replica leads.
type dnsKeeper struct {
	patcher  *dns.Patcher
	recorder record.EventRecorder

	mu      sync.Mutex
	rules   []dns.ExactRule // the latest build's; nil before the first
	built   bool            // a build has set rules
	watcher *dns.Watcher    // the latest leadership's; nil before the first
	running bool            // watcher runs now
	lastErr string          // the error last reported as an Event
}

// newDNSKeeper checks the DNS options of cfg.
func newDNSKeeper(cfg Config, kube kubernetes.Interface, recorder record.EventRecorder) (*dnsKeeper, error) {
	opts := dns.Options{MeshNamespace: cfg.MeshNamespace, Domain: cfg.Domain, ClusterDomain: cfg.ClusterDomain}
	if cfg.Aliases {
		opts.Aliases = slices.Clone(dns.KnownAliases)
	}
	p, err := dns.NewPatcher(dns.PatcherOptions{Client: kube, Namespace: dnsNamespace, KubeDNSStubIP: cfg.KubeDNSStubIP, Options: opts})
	if err != nil {
		return nil, fmt.Errorf("patch-dns: %w", err)
	}
	return &dnsKeeper{patcher: p, recorder: recorder}, nil
}

// setRules hands the exact rules of topo to the patcher, and asks the
// running watcher to write them when they changed.
func (k *dnsKeeper) setRules(topo *topology.Topology) {
	rules := exactRules(topo)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.built && slices.Equal(rules, k.rules) {
		return
	}
	for _, err := range k.patcher.SetExactRules(rules) {
		klog.Warningf("DNS exact rule left out: %v", err)
	}
	k.rules, k.built = rules, true
	if k.running {
		k.watcher.Notify()
	}
}

// exactRules lists, in (namespace, name) order, the services whose mesh name
// the generic rewrite rules get wrong (shadow.NeedsExactDNSRule, the
// predicate of the topology's DNSRewrites).
func exactRules(topo *topology.Topology) []dns.ExactRule {
	var out []dns.ExactRule
	for _, svc := range topo.Services {
		if shadow.NeedsExactDNSRule(svc.Key(), svc.ShadowName) {
			out = append(out, dns.ExactRule{Service: svc.Key(), Shadow: svc.ShadowName})
		}
	}
	slices.SortFunc(out, func(a, b dns.ExactRule) int {
		return strings.Compare(a.Service.String(), b.Service.String())
	})
	return out
}

// run keeps the patch until ctx (the leadership) ends. It waits for the
// first build: a patch without the exact rules would take the hashed
// services' names away until the next write.
func (k *dnsKeeper) run(ctx context.Context) {
	if wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
		k.mu.Lock()
		defer k.mu.Unlock()
		return k.built, nil
	}) != nil {
		return // leadership ended first
	}
	w := dns.NewWatcher(dns.WatcherOptions{Patcher: k.patcher, OnEvent: k.report})
	k.mu.Lock()
	k.watcher, k.running, k.lastErr = w, true, ""
	k.mu.Unlock()
	if err := w.Run(ctx); err != nil {
		klog.Errorf("DNS patch: %v", err)
	}
	k.mu.Lock()
	k.running = false
	k.mu.Unlock()
}

// report turns a watcher run into an Event: drift and the first patch on
// the ConfigMaps written, an error (once until it changes or a run
// succeeds) on the DNS namespace.
func (k *dnsKeeper) report(ev dns.Event) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if ev.Err != nil {
		if msg := ev.Err.Error(); msg != k.lastErr {
			k.lastErr = msg
			klog.Warningf("DNS patch: %v (retrying)", ev.Err)
			k.recorder.Event(dnsNamespaceRef(), corev1.EventTypeWarning, ReasonDNSPatchFailed, "DNS patch failed (retrying): "+msg)
		}
		return
	}
	k.lastErr = ""
	if !ev.Result.Changed {
		return
	}
	written := strings.Join(ev.Result.Written, ", ")
	reason, kind, msg := ReasonDNSPatched, corev1.EventTypeNormal, fmt.Sprintf("mesh domain rewrite rules written (%d exact rules): %s", len(k.rules), written)
	if ev.Drift {
		reason, kind = ReasonDNSDrift, corev1.EventTypeWarning
		msg = "the cluster DNS configuration changed without nodemesh (a managed add-on putting its own back?); rewrite rules repaired: " + written
	}
	klog.Info(msg)
	refs := writtenConfigMaps(ev.Result.Written)
	if len(refs) == 0 {
		refs = []*corev1.ObjectReference{dnsNamespaceRef()}
	}
	for _, ref := range refs {
		k.recorder.Event(ref, kind, reason, msg)
	}
}

// writtenConfigMaps picks the ConfigMaps out of dns.Result.Written
// ("ConfigMap kube-system/coredns", "Deployment kube-system/coredns").
func writtenConfigMaps(written []string) []*corev1.ObjectReference {
	var out []*corev1.ObjectReference
	for _, w := range written {
		nsName, ok := strings.CutPrefix(w, "ConfigMap ")
		ns, name, ok2 := strings.Cut(nsName, "/")
		if ok && ok2 {
			out = append(out, &corev1.ObjectReference{APIVersion: "v1", Kind: "ConfigMap", Namespace: ns, Name: name})
		}
	}
	return out
}

// dnsNamespaceRef is where an Event goes that no ConfigMap is known for.
func dnsNamespaceRef() *corev1.ObjectReference {
	return &corev1.ObjectReference{APIVersion: "v1", Kind: "Namespace", Name: dnsNamespace, Namespace: dnsNamespace}
}

// DNSStatus is the answer of /api/status/dns.
type DNSStatus struct {
	// Enabled is --patch-dns.
	Enabled bool `json:"enabled"`
	// Running is true while this replica leads and keeps the patch.
	Running bool `json:"running"`
	// ExactRules counts the exact rules of the latest build.
	ExactRules int `json:"exactRules"`
	// Watcher is the latest leadership's dns.Watcher status; nil when this
	// replica never kept the patch.
	Watcher *dns.Status `json:"watcher,omitempty"`
}

// status reports the patch; a nil keeper is --patch-dns off.
func (k *dnsKeeper) status() DNSStatus {
	if k == nil {
		return DNSStatus{}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	s := DNSStatus{Enabled: true, Running: k.running, ExactRules: len(k.rules)}
	if k.watcher != nil {
		st := k.watcher.Status()
		s.Watcher = &st
	}
	return s
}
