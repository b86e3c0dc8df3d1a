package dns

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Annotations the patcher sets on the DNS Deployment's pod template to roll
// CoreDNS out when it has no reload plugin.
const (
	// ConfigHashAnnotation holds a hash of the patched configuration, so an
	// identical patch never restarts anything.
	ConfigHashAnnotation = "nodemesh.io/dns-config-hash"
	// restartedAtAnnotation is kubectl rollout restart's annotation; restore
	// uses it when it must restart CoreDNS and ConfigHashAnnotation is gone.
	restartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"
	// managedByLabel marks a kube-dns ConfigMap the patcher created.
	managedByLabel = "app.kubernetes.io/managed-by"
)

// PatcherOptions configure a Patcher.
type PatcherOptions struct {
	// Client reads and writes Deployments and ConfigMaps in Namespace.
	Client kubernetes.Interface
	// Namespace holds the cluster DNS. Default "kube-system".
	Namespace string
	// Options say what the patch adds. Options.ExactRules is the initial
	// list; SetExactRules replaces it.
	Options Options
	// KubeDNSStubIP is the address of a CoreDNS the mesh runs, which kube-dns
	// forwards the mesh domains to. Required only when the cluster runs
	// kube-dns.
	KubeDNSStubIP string
	// Now stamps restarts. Default time.Now.
	Now func() time.Time
}

// Patcher patches, checks and restores the cluster DNS configuration. It is
// safe for concurrent use; calls are serialised.
type Patcher struct {
	o    PatcherOptions
	mu   sync.Mutex // serialises runs and guards opts and rulesGen
	opts Options
	// rulesGen counts the changes SetExactRules made, so the Watcher can
	// tell a write of new rules from the repair of drift.
	rulesGen uint64

	wmu     sync.Mutex
	watched map[string]bool // ConfigMaps of the last target found
}

// Result says what a Patch, Restore, Check or Reconcile found and did.
type Result struct {
	// Provider is the DNS server found.
	Provider Provider
	// Changed is true when the configuration differed from the wanted one:
	// Patch, Restore and Reconcile wrote it, Check only reports it.
	Changed bool
	// WasPatched is true when nodemesh's region or entries were there
	// before. Changed && WasPatched means they had drifted.
	WasPatched bool
	// Written lists the objects written (or that would be, for Check), as
	// "ConfigMap kube-system/coredns", sorted.
	Written []string
	// RolledOut is true when the Deployment's pod template was changed to
	// restart the DNS pods.
	RolledOut bool
}

// NewPatcher checks the options and returns a Patcher.
func NewPatcher(o PatcherOptions) (*Patcher, error) {
	if o.Client == nil {
		return nil, errors.New("dns: PatcherOptions.Client is nil")
	}
	if o.Namespace == "" {
		o.Namespace = metav1.NamespaceSystem
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	opts, err := o.Options.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Patcher{o: o, opts: opts}, nil
}

// SetExactRules replaces the exact rules used by later runs. A rule that
// cannot be written, or a second rule for a service with another shadow,
// is left out and reported; the others still apply.
func (p *Patcher) SetExactRules(rules []ExactRule) []error {
	var errs []error
	byService := map[string]string{}
	var keep []ExactRule
	for _, r := range rules {
		if err := ValidateRule(r); err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, ok := byService[r.Service.String()]; ok && prev != r.Shadow {
			errs = append(errs, fmt.Errorf("exact rule for %s: shadow %q left out, %q came first", r.Service, r.Shadow, prev))
			continue
		}
		byService[r.Service.String()] = r.Shadow
		keep = append(keep, r)
	}
	clean, _ := cleanRules(keep) // cannot fail: every rule was checked
	p.mu.Lock()
	if !slices.Equal(clean, p.opts.ExactRules) {
		p.opts.ExactRules = clean
		p.rulesGen++
	}
	p.mu.Unlock()
	return errs
}

// rulesGeneration says how many times SetExactRules changed the rules.
func (p *Patcher) rulesGeneration() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rulesGen
}

// Patch adds the mesh domains to the cluster DNS, or repairs them. It
// writes nothing when everything is already as wanted.
func (p *Patcher) Patch(ctx context.Context) (Result, error) { return p.run(ctx, modePatch) }

// Restore removes what Patch added and nothing else.
func (p *Patcher) Restore(ctx context.Context) (Result, error) { return p.run(ctx, modeRestore) }

// Check reports whether the cluster DNS differs from what Patch would make
// it (drift), without writing.
func (p *Patcher) Check(ctx context.Context) (drift bool, err error) {
	res, err := p.run(ctx, modeCheck)
	return res.Changed, err
}

// Reconcile is what the controller calls periodically and on ConfigMap
// events: it re-checks and repairs. Result.Changed says drift was found (or,
// on the first call, that the patch was applied); see Watcher.
func (p *Patcher) Reconcile(ctx context.Context) (Result, error) { return p.Patch(ctx) }

type mode int

const (
	modePatch mode = iota
	modeRestore
	modeCheck
)

func (p *Patcher) run(ctx context.Context, m mode) (Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, err := discover(ctx, p.o.Client, p.o.Namespace)
	if err != nil {
		return Result{}, err
	}
	p.wmu.Lock()
	p.watched = map[string]bool{t.configMap: true}
	if t.custom != "" {
		p.watched[t.custom] = true
	}
	p.wmu.Unlock()
	res := Result{Provider: t.provider}
	if t.provider == KubeDNS {
		err = p.runKubeDNS(ctx, t, m, &res)
	} else {
		err = p.runCoreDNS(ctx, t, m, &res)
	}
	sort.Strings(res.Written)
	return res, err
}

// getConfigMap gets a ConfigMap, saying which one was looked for and why.
func (p *Patcher) getConfigMap(ctx context.Context, name, why string) (*corev1.ConfigMap, error) {
	cm, err := p.o.Client.CoreV1().ConfigMaps(p.o.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("ConfigMap %s/%s (%s) not found", p.o.Namespace, name, why)
	}
	if err != nil {
		return nil, fmt.Errorf("getting ConfigMap %s/%s: %w", p.o.Namespace, name, err)
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	return cm, nil
}

// editConfigMap applies edit to a fresh copy of the ConfigMap and writes it
// when edit reports a change, retrying on write conflicts. edit must be
// free of side effects: it may run several times.
func (p *Patcher) editConfigMap(ctx context.Context, name, why string, m mode, res *Result, edit func(cm *corev1.ConfigMap) (bool, error)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := p.getConfigMap(ctx, name, why)
		if err != nil {
			return err
		}
		changed, err := edit(cm)
		if err != nil || !changed {
			return err
		}
		res.Changed = true
		res.Written = appendOnce(res.Written, "ConfigMap "+p.o.Namespace+"/"+name)
		if m == modeCheck {
			return nil
		}
		_, err = p.o.Client.CoreV1().ConfigMaps(p.o.Namespace).Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
}

// rollout restarts the DNS pods by changing the pod template: on patch it
// sets ConfigHashAnnotation to hash; on restore it removes it (or, when
// absent, sets kubectl's restartedAt).
func (p *Patcher) rollout(ctx context.Context, name string, m mode, hash string, res *Result) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := p.o.Client.AppsV1().Deployments(p.o.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ann := d.Spec.Template.Annotations
		if ann == nil {
			ann = map[string]string{}
		}
		switch {
		case m == modePatch && ann[ConfigHashAnnotation] == hash:
			return nil
		case m == modePatch:
			ann[ConfigHashAnnotation] = hash
		case ann[ConfigHashAnnotation] != "":
			delete(ann, ConfigHashAnnotation)
		default:
			ann[restartedAtAnnotation] = p.o.Now().UTC().Format(time.RFC3339)
		}
		d.Spec.Template.Annotations = ann
		if _, err := p.o.Client.AppsV1().Deployments(p.o.Namespace).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			return err
		}
		res.RolledOut = true
		res.Written = appendOnce(res.Written, "Deployment "+p.o.Namespace+"/"+name)
		return nil
	})
	if err != nil {
		return fmt.Errorf("restarting Deployment %s/%s: %w", p.o.Namespace, name, err)
	}
	return nil
}

func configHash(parts ...string) string {
	h := sha256.New()
	for _, s := range parts {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func appendOnce(xs []string, x string) []string {
	for _, y := range xs {
		if y == x {
			return xs
		}
	}
	return append(xs, x)
}
