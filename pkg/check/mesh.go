package check

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/nodemesh/nodemesh/pkg/controller"
	"github.com/nodemesh/nodemesh/pkg/controllerapi"
	"github.com/nodemesh/nodemesh/pkg/shadow"
)

// betweenPolls is how long a proxy may be without a held poll and still
// count as connected: the moment between receiving a table and asking
// again.
const betweenPolls = 5 * time.Second

// maxListed bounds how many offenders a message names.
const maxListed = 5

// fetchController reads the controller's readiness and topology once for
// every check.
func (s *state) fetchController(ctx context.Context) {
	s.ready, s.readyErr = s.o.Controller.Readiness(ctx)
	if s.readyErr == nil {
		s.topo, s.topoErr = s.o.Controller.Topology(ctx)
	}
}

func (s *state) checkControllerReady(context.Context) Result {
	ns := s.o.MeshNamespace
	if s.readyErr != nil {
		return fail(NameControllerReady, "is it running? kubectl -n "+ns+" get pods -l app.kubernetes.io/component=controller; then its logs",
			"cannot reach the controller: %v", s.readyErr)
	}
	r := s.ready
	switch {
	case !r.Synced:
		return fail(NameControllerReady, "kubectl -n "+ns+" logs deployment/nodemesh-controller (RBAC to list and watch? apiserver load?)",
			"the controller's informer caches have not synced")
	case !r.Ready || r.TableVersion == 0:
		return fail(NameControllerReady, "kubectl -n "+ns+" logs deployment/nodemesh-controller", "the controller serves no routing table yet")
	}
	return pass(NameControllerReady, "ready, serving table version %d (%d object errors)", r.TableVersion, r.Errors)
}

func (s *state) checkControllerLeader(ctx context.Context) Result {
	const name = NameControllerLeader
	if down, why := s.apiserverDown(); down {
		return notChecked(name, why)
	}
	if down, why := s.controllerDown(); down {
		return notChecked(name, why)
	}
	if !s.ready.Leader.Enabled {
		return pass(name, "leader election is off: the replica reached writes shadow services (run only one)")
	}
	fix := "kubectl -n " + s.o.MeshNamespace + " logs deployment/nodemesh-controller | grep 'leader election' (RBAC on leases?)"
	lease, err := s.o.Kube.CoordinationV1().Leases(s.o.LeaseNamespace).Get(ctx, s.o.LeaseName, metav1.GetOptions{})
	if err != nil {
		return fail(name, fix, "no leader: Lease %s/%s: %v", s.o.LeaseNamespace, s.o.LeaseName, err)
	}
	holder := ""
	if lease.Spec.HolderIdentity != nil {
		holder = *lease.Spec.HolderIdentity
	}
	if holder == "" {
		return fail(name, fix, "no replica holds Lease %s/%s", s.o.LeaseNamespace, s.o.LeaseName)
	}
	if lease.Spec.RenewTime != nil && lease.Spec.LeaseDurationSeconds != nil {
		expiry := lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second)
		if now := s.serverNow(); now.After(expiry) {
			return fail(name, fix, "the leader %s stopped renewing Lease %s/%s %s ago", holder, s.o.LeaseNamespace, s.o.LeaseName, now.Sub(expiry).Round(time.Second))
		}
	}
	if l := s.ready.Leader; l.Leader != "" && l.Leader != holder {
		return fail(name, fix, "the Lease names %s but the replica reached follows %s", holder, l.Leader)
	}
	return pass(name, "%s holds Lease %s/%s", holder, s.o.LeaseNamespace, s.o.LeaseName)
}

func (s *state) checkProxies(ctx context.Context) Result {
	const name = NameProxies
	if down, why := s.apiserverDown(); down {
		return notChecked(name, why)
	}
	if down, why := s.controllerDown(); down {
		return notChecked(name, why)
	}
	nodes, err := s.o.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fail(name, "check the kubeconfig's rights to list nodes", "listing nodes: %v", err)
	}
	problems, stale, err := s.proxyProblems(ctx, nodes.Items)
	if err == nil && len(stale) > 0 && len(problems) == len(stale) && s.o.Grace > 0 {
		// A table published a moment ago: give the proxies a moment.
		select {
		case <-time.After(s.o.Grace):
		case <-ctx.Done():
		}
		problems, stale, err = s.proxyProblems(ctx, nodes.Items)
	}
	if err != nil {
		return fail(name, "check the controller", "%v", err)
	}
	ns := s.o.MeshNamespace
	switch {
	case len(problems) == 0:
		return pass(name, "%d of %d nodes run a ready proxy on the controller's table version", countReady(nodes.Items), len(nodes.Items))
	case len(stale) == len(problems):
		return fail(name, "the proxy rejected the table (a port in use?): kubectl -n "+ns+" logs <proxy pod on that node> | grep -i reject",
			"%s", listed(problems))
	}
	return fail(name, "kubectl -n "+ns+" get pods -l app.kubernetes.io/component=proxy -o wide; check the DaemonSet and the proxy's logs",
		"%s", listed(problems))
}

// proxyProblems compares the Ready nodes with the proxies the controller
// replicas heard from. A replica knows only the proxies that poll it and
// numbers its own table versions, so a node is fine when any replica sees
// its proxy connected, ready and on that replica's version. stale lists the
// problems that are only a lagging version.
func (s *state) proxyProblems(ctx context.Context, nodes []corev1.Node) (problems, stale []string, err error) {
	views, err := s.nodeViews(ctx)
	if err != nil {
		return nil, nil, err
	}
	now := s.serverNow() // LastSeen is stamped by the controller's clock
	for _, node := range nodes {
		if !nodeReady(&node) {
			continue // no pods run there; its proxy's absence is not the mesh's fault
		}
		var worst string
		var worstSeen time.Time
		isStale, fine := false, false
		for _, v := range views {
			p, ok := v.byNode[node.Name]
			var msg string
			switch {
			case !ok:
				continue
			case !p.Connected && now.Sub(p.LastSeen) > betweenPolls:
				msg = fmt.Sprintf("%s: proxy not connected (last seen %s ago)", node.Name, now.Sub(p.LastSeen).Round(time.Second))
			case !p.Ready:
				msg = node.Name + ": proxy not ready (no table applied)"
			case p.AppliedVersion != v.version:
				msg = fmt.Sprintf("%s: proxy on table version %d, the controller serves %d", node.Name, p.AppliedVersion, v.version)
			default:
				fine = true
			}
			// Describe the freshest report of a node in trouble.
			if msg != "" && (worst == "" || p.LastSeen.After(worstSeen)) {
				worst, worstSeen, isStale = msg, p.LastSeen, p.AppliedVersion != v.version && p.Ready && (p.Connected || now.Sub(p.LastSeen) <= betweenPolls)
			}
		}
		switch {
		case fine:
		case worst == "":
			problems = append(problems, node.Name+": no proxy heard from")
		case isStale:
			problems, stale = append(problems, worst), append(stale, worst)
		default:
			problems = append(problems, worst)
		}
	}
	return problems, stale, nil
}

// nodeView is one replica's /api/status/nodes.
type nodeView struct {
	version uint64
	byNode  map[string]controller.NodeStatus
}

// nodeViews reads /api/status/nodes of every replica (Options.Replicas),
// or of the one controller reached when replicas cannot be listed.
func (s *state) nodeViews(ctx context.Context) ([]nodeView, error) {
	apis := []*controllerapi.Client{s.o.Controller}
	if s.o.Replicas != nil {
		if rs, err := s.o.Replicas(ctx); err == nil && len(rs) > 0 {
			apis = apis[:0]
			for _, r := range rs {
				apis = append(apis, r.API)
			}
		}
	}
	var views []nodeView
	var errs []error
	for _, api := range apis {
		st, err := api.Nodes(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		v := nodeView{version: st.TableVersion, byNode: map[string]controller.NodeStatus{}}
		for _, n := range st.Nodes {
			v.byNode[n.Node] = n
		}
		views = append(views, v)
	}
	if len(views) == 0 {
		return nil, errors.Join(errs...)
	}
	return views, nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func countReady(nodes []corev1.Node) int {
	n := 0
	for i := range nodes {
		if nodeReady(&nodes[i]) {
			n++
		}
	}
	return n
}

// listed joins problems for a one-line message, naming at most maxListed.
func listed(problems []string) string {
	slices.Sort(problems)
	if len(problems) > maxListed {
		return strings.Join(problems[:maxListed], "; ") + fmt.Sprintf("; and %d more", len(problems)-maxListed)
	}
	return strings.Join(problems, "; ")
}

func (s *state) checkShadows(ctx context.Context) Result {
	const name = NameShadows
	if down, why := s.apiserverDown(); down {
		return notChecked(name, why)
	}
	if s.topo == nil {
		why := "the controller API is unreachable"
		if s.topoErr != nil {
			why = s.topoErr.Error()
		}
		return notChecked(name, why)
	}
	problems, err := s.shadowProblems(ctx)
	if err == nil && len(problems) > 0 && s.o.Grace > 0 {
		// The leader may be writing them right now.
		select {
		case <-time.After(s.o.Grace):
		case <-ctx.Done():
		}
		problems, err = s.shadowProblems(ctx)
	}
	if err != nil {
		return fail(name, "check the kubeconfig's rights to list services", "%v", err)
	}
	if len(problems) > 0 {
		return fail(name, "the leader writes them: see the controller-leader check and kubectl -n "+s.o.MeshNamespace+" logs deployment/nodemesh-controller",
			"%s", listed(problems))
	}
	return pass(name, "%d shadow services match their sources", len(s.topo.ShadowSpecs()))
}

// shadowProblems compares the shadow Services the controller wants with
// those in the mesh namespace, on the fields nodemesh owns.
func (s *state) shadowProblems(ctx context.Context) ([]string, error) {
	list, err := s.o.Kube.CoreV1().Services(s.o.MeshNamespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{shadow.LabelManagedBy: shadow.ManagedByValue}).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("listing the shadow services: %w", err)
	}
	actual := make([]*corev1.Service, len(list.Items))
	byName := map[string]*corev1.Service{}
	for i := range list.Items {
		actual[i] = &list.Items[i]
		byName[list.Items[i].Name] = &list.Items[i]
	}
	desired := shadow.Desired(s.topo.ShadowSpecs())
	var problems []string
	for _, d := range desired {
		src := d.Labels[shadow.LabelSourceNamespace] + "/" + d.Labels[shadow.LabelSourceName]
		a := byName[d.Name]
		switch {
		case a == nil:
			problems = append(problems, fmt.Sprintf("%s: no shadow service %s", src, d.Name))
		case shadow.NeedsUpdate(d, a):
			problems = append(problems, fmt.Sprintf("%s: shadow service %s differs (ports, selector or labels)", src, d.Name))
		}
	}
	for _, o := range shadow.Orphans(desired, actual) {
		problems = append(problems, fmt.Sprintf("%s: shadow service of no mesh service", o.Name))
	}
	return problems, nil
}

func (s *state) checkPortRanges(ctx context.Context) Result {
	const name = NamePortRanges
	if s.topo == nil {
		return notChecked(name, "the controller API is unreachable")
	}
	errs, err := s.o.Controller.Errors(ctx)
	if err != nil {
		return fail(name, "check the controller", "%v", err)
	}
	var exhausted []string
	for _, e := range errs.Errors {
		if strings.Contains(strings.ToLower(e.Message), "no free proxy port") {
			exhausted = append(exhausted, fmt.Sprintf("%s/%s: %s", e.Namespace, e.Name, e.Message))
		}
	}
	var tcp, udp int
	for _, svc := range s.topo.Services {
		for _, p := range svc.Ports {
			switch {
			case p.ProxyPort == 0:
			case p.Protocol == shadow.KindTCP:
				tcp++
			case p.Protocol == shadow.KindUDP:
				udp++
			}
		}
	}
	o := s.topo.Options
	usage := fmt.Sprintf("TCP %d of %d proxy ports used (%s), UDP %d of %d (%s)",
		tcp, o.TCPPortRange.Max-o.TCPPortRange.Min+1, o.TCPPortRange, udp, o.UDPPortRange.Max-o.UDPPortRange.Min+1, o.UDPPortRange)
	if len(exhausted) > 0 {
		return fail(name, "widen the controller's --tcp-port-range/--udp-port-range, or serve fewer ports as tcp/udp",
			"%s; ports left unmeshed: %s", usage, listed(exhausted))
	}
	return pass(name, "%s", usage)
}
