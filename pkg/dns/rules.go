package dns

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Labels every shadow service carries (the shared contract): they point
// back at the user's service.
const (
	sourceNamespaceLabel = "nodemesh.io/source-namespace"
	sourceNameLabel      = "nodemesh.io/source-name"
	shadowManagedByValue = "nodemesh"
	shadowSelector       = managedByLabel + "=" + shadowManagedByValue
)

// RulesForShadows returns the exact rules the shadow services need (see
// NeedsExactRule), read from their source labels. Services without both
// labels are skipped: they are not shadows. The controller can call it with
// its snapshot's shadow services, or pass the topology's list instead.
func RulesForShadows(shadows []*corev1.Service) []ExactRule {
	var out []ExactRule
	for _, s := range shadows {
		if s.Labels[managedByLabel] != shadowManagedByValue {
			continue
		}
		svc := types.NamespacedName{Namespace: s.Labels[sourceNamespaceLabel], Name: s.Labels[sourceNameLabel]}
		if svc.Namespace == "" || svc.Name == "" || !NeedsExactRule(svc, s.Name) {
			continue
		}
		out = append(out, ExactRule{Service: svc, Shadow: s.Name})
	}
	return out
}

// ShadowRules lists the shadow services in the mesh namespace and returns
// their exact rules, for a patch run outside the controller.
func (p *Patcher) ShadowRules(ctx context.Context) ([]ExactRule, error) {
	p.mu.Lock()
	meshNS := p.opts.MeshNamespace
	p.mu.Unlock()
	list, err := p.o.Client.CoreV1().Services(meshNS).List(ctx, metav1.ListOptions{LabelSelector: shadowSelector})
	if err != nil {
		return nil, fmt.Errorf("listing the shadow services in %s: %w", meshNS, err)
	}
	shadows := make([]*corev1.Service, len(list.Items))
	for i := range list.Items {
		shadows[i] = &list.Items[i]
	}
	return RulesForShadows(shadows), nil
}
