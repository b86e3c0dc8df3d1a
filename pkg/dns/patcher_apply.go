package dns

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// runCoreDNS patches, restores or checks the Corefile, or the
// coredns-custom ConfigMap when the Deployment mounts it, and restarts
// CoreDNS only when it has no reload plugin to pick the change up.
func (p *Patcher) runCoreDNS(ctx context.Context, t *target, m mode, res *Result) error {
	opts := p.opts
	if t.dnsPort != 0 {
		opts.DefaultPort = t.dnsPort
	}
	ns := p.o.Namespace
	why := fmt.Sprintf("the Corefile of Deployment %s/%s", ns, t.deployment.Name)
	var mainText, mainOut string
	err := p.editConfigMap(ctx, t.configMap, why, m, res, func(cm *corev1.ConfigMap) (bool, error) {
		text, ok := cm.Data[t.key]
		if !ok {
			return false, fmt.Errorf("ConfigMap %s/%s (%s) has no key %q", ns, t.configMap, why, t.key)
		}
		mainText, mainOut = text, text
		patched, err := IsPatched(text)
		if err != nil {
			return false, fmt.Errorf("ConfigMap %s/%s key %s: %w", ns, t.configMap, t.key, err)
		}
		res.WasPatched = res.WasPatched || patched
		var out string
		switch {
		case t.custom != "" && m != modeRestore && patched:
			return false, fmt.Errorf("ConfigMap %s/%s holds a nodemesh region although %s is mounted, where the patch goes; run nodemesh dns restore first", ns, t.configMap, t.custom)
		case m == modeRestore:
			out, err = Restore(text)
		case t.custom != "":
			return false, nil // the main Corefile is only read
		default:
			out, err = Patch(text, opts)
		}
		if err != nil {
			return false, fmt.Errorf("ConfigMap %s/%s key %s: %w", ns, t.configMap, t.key, err)
		}
		if out == text {
			return false, nil
		}
		cm.Data[t.key], mainOut = out, out
		return true, nil
	})
	if err != nil {
		return err
	}
	reloads := hasReload(mainOut)
	customOut := ""
	if t.custom != "" {
		if customOut, reloads, err = p.runCustom(ctx, t, m, opts, mainText, res, reloads); err != nil {
			return err
		}
	}
	if !res.Changed || m == modeCheck || reloads {
		return nil
	}
	return p.rollout(ctx, t.deployment.Name, m, configHash(mainOut, customOut), res)
}

// runCustom patches the CustomKey of the coredns-custom ConfigMap. It
// returns the key's new value and whether CoreDNS reloads on its own.
func (p *Patcher) runCustom(ctx context.Context, t *target, m mode, opts Options, mainText string, res *Result, reloads bool) (string, bool, error) {
	ns := p.o.Namespace
	if m != modeRestore {
		l, err := FindListener(mainText, opts.ClusterDomain)
		if err != nil {
			return "", false, fmt.Errorf("ConfigMap %s/%s key %s: %w", ns, t.configMap, t.key, err)
		}
		opts.Listener = &l
		if !importsFile(mainText, CustomKey) {
			return "", false, fmt.Errorf("%s/%s is mounted but the Corefile in ConfigMap %s/%s imports no file matching %q; add `import custom/*.server` to it", ns, t.custom, ns, t.configMap, CustomKey)
		}
		if err := zonesFree(mainText, opts.domains()); err != nil {
			return "", false, fmt.Errorf("ConfigMap %s/%s key %s: %w", ns, t.configMap, t.key, err)
		}
	}
	_, err := p.o.Client.CoreV1().ConfigMaps(ns).Get(ctx, t.custom, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && m != modeRestore {
		// The volume is optional on AKS; kubelet mounts it once it exists.
		out, err := Patch("", opts)
		if err != nil {
			return "", false, err
		}
		res.Changed = true
		res.Written = appendOnce(res.Written, "ConfigMap "+ns+"/"+t.custom)
		if m == modeCheck {
			return out, reloads, nil
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: t.custom, Namespace: ns}, Data: map[string]string{CustomKey: out}}
		if _, err := p.o.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			return "", false, fmt.Errorf("creating ConfigMap %s/%s: %w", ns, t.custom, err)
		}
		return out, reloads, nil
	}
	if apierrors.IsNotFound(err) {
		return "", reloads, nil // restore: nothing to remove
	}
	var value string
	why := "the custom CoreDNS configuration mounted by Deployment " + ns + "/" + t.deployment.Name
	err = p.editConfigMap(ctx, t.custom, why, m, res, func(cm *corev1.ConfigMap) (bool, error) {
		cur, had := cm.Data[CustomKey]
		value = cur
		reloads = hasReload(mainText) || overridesReload(cm.Data)
		if had {
			res.WasPatched = true
		}
		var out string
		var err error
		if m == modeRestore {
			out, err = Restore(cur)
		} else {
			for _, k := range sortedKeys(cm.Data) {
				if k != CustomKey && strings.HasSuffix(k, ".server") {
					if err := zonesFree(cm.Data[k], opts.domains()); err != nil {
						return false, fmt.Errorf("ConfigMap %s/%s key %s: %w", ns, t.custom, k, err)
					}
				}
			}
			out, err = Patch(cur, opts)
		}
		if err != nil {
			return false, fmt.Errorf("ConfigMap %s/%s key %s: %w", ns, t.custom, CustomKey, err)
		}
		if out == cur && (out != "" || !had) {
			return false, nil
		}
		value = out
		if out == "" {
			delete(cm.Data, CustomKey)
		} else {
			cm.Data[CustomKey] = out
		}
		return true, nil
	})
	return value, reloads, err
}

// runKubeDNS adds or removes the stubDomains entries of kube-dns, which
// re-reads its ConfigMap by itself: no restart.
func (p *Patcher) runKubeDNS(ctx context.Context, t *target, m mode, res *Result) error {
	ns := p.o.Namespace
	if m != modeRestore && p.o.KubeDNSStubIP == "" {
		return fmt.Errorf("the cluster runs kube-dns (Deployment %s/%s): set the kube-dns stub IP to the ClusterIP of a CoreDNS that serves the mesh domains", ns, t.deployment.Name)
	}
	domains := p.opts.domains()
	_, err := p.o.Client.CoreV1().ConfigMaps(ns).Get(ctx, t.configMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if m == modeRestore {
			return nil
		}
		out, owned, err := PatchStubDomains("", domains, p.o.KubeDNSStubIP, nil)
		if err != nil {
			return err
		}
		res.Changed = true
		res.Written = append(res.Written, "ConfigMap "+ns+"/"+t.configMap)
		if m == modeCheck {
			return nil
		}
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Name: t.configMap, Namespace: ns,
				Labels:      map[string]string{managedByLabel: "nodemesh"},
				Annotations: map[string]string{StubDomainsAnnotation: strings.Join(owned, ",")},
			},
			Data: map[string]string{"stubDomains": out},
		}
		_, err = p.o.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		return err
	}
	why := "the configuration of Deployment " + ns + "/" + t.deployment.Name
	return p.editConfigMap(ctx, t.configMap, why, m, res, func(cm *corev1.ConfigMap) (bool, error) {
		cur, had := cm.Data["stubDomains"]
		ann := cm.Annotations[StubDomainsAnnotation]
		owned := splitOwned(ann)
		res.WasPatched = len(owned) > 0
		var out, newAnn string
		var err error
		if m == modeRestore {
			out, err = RestoreStubDomains(cur, owned)
		} else {
			var nowOwned []string
			out, nowOwned, err = PatchStubDomains(cur, domains, p.o.KubeDNSStubIP, owned)
			newAnn = strings.Join(nowOwned, ",")
		}
		if err != nil {
			return false, fmt.Errorf("ConfigMap %s/%s: %w", ns, t.configMap, err)
		}
		if out == cur && newAnn == ann && (out != "" || !had) {
			return false, nil
		}
		if out == "" {
			delete(cm.Data, "stubDomains")
		} else {
			cm.Data["stubDomains"] = out
		}
		if newAnn == "" {
			delete(cm.Annotations, StubDomainsAnnotation)
		} else {
			if cm.Annotations == nil {
				cm.Annotations = map[string]string{}
			}
			cm.Annotations[StubDomainsAnnotation] = newAnn
		}
		return true, nil
	})
}

// hasReload reports whether a Corefile runs the reload plugin in a block.
// Text that does not parse counts as no.
func hasReload(text string) bool {
	cf, err := parseCorefile(text)
	if err != nil {
		return false
	}
	for _, b := range cf.blocks {
		for _, d := range b.directives {
			if d.name.text == "reload" {
				return true
			}
		}
	}
	return false
}

// overridesReload reports whether a coredns-custom "*.override" key (plain
// directives imported into the main block) runs reload.
func overridesReload(data map[string]string) bool {
	for _, k := range sortedKeys(data) {
		if strings.HasSuffix(k, ".override") && hasReload(". {\n"+data[k]+"\n}\n") {
			return true
		}
	}
	return false
}

// importsFile reports whether a top-level import of the Corefile matches a
// file named name (AKS: "import custom/*.server").
func importsFile(text, name string) bool {
	cf, err := parseCorefile(text)
	if err != nil {
		return false
	}
	for _, imp := range cf.imports {
		for _, a := range imp.args {
			if ok, _ := path.Match(path.Base(a.text), name); ok {
				return true
			}
		}
	}
	return false
}

// zonesFree reports an error when a Corefile outside nodemesh's region
// already serves one of the domains.
func zonesFree(text string, domains []string) error {
	cf, err := parseCorefile(text)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnparseable, err)
	}
	reg, err := findRegion(cf)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnparseable, err)
	}
	return checkConflicts(cf, reg, domains)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
