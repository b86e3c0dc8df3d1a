package controller

import (
	"context"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// Leader election (client-go, a coordination.k8s.io Lease).
//
// Design: every replica runs the informers, builds the table and serves the
// API and the proxies' table watch. Building is pure and deterministic, so
// all replicas serve the same table and a proxy may poll any of them. Only
// the leader writes: it creates, fixes and deletes shadow Services and emits
// Events. When leadership moves, the new leader compares desired with actual
// and writes only what differs, so a hand-over costs no writes.

// leaderState records who leads, for the status API.
type leaderState struct {
	mu       sync.Mutex
	identity string // this replica
	leader   string // the current leader's identity, "" when unknown
	leading  bool
}

func (l *leaderState) get() (identity, leader string, leading bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.identity, l.leader, l.leading
}

func (l *leaderState) set(f func(*leaderState)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(l)
}

// campaign runs leader election until ctx ends: it leads while it holds the
// lease, and campaigns again after losing it.
func (c *Controller) campaign(ctx context.Context) {
	id := c.cfg.identity()
	c.leader.set(func(l *leaderState) { l.identity = id })
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: c.cfg.leaseNamespace(), Name: c.cfg.LeaseName},
		Client:     c.clients.kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:          lock,
		LeaseDuration: c.cfg.LeaseDuration,
		RenewDeadline: c.cfg.RenewDeadline,
		RetryPeriod:   c.cfg.RetryPeriod,
		// A replica that stops on purpose hands the lease over at once, so
		// a rolling restart does not wait out LeaseDuration.
		ReleaseOnCancel: true,
		Name:            c.cfg.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: c.lead,
			OnStoppedLeading: func() {
				klog.Infof("leader election: %s stopped leading", id)
				c.leader.set(func(l *leaderState) { l.leading = false })
			},
			OnNewLeader: func(leader string) {
				klog.Infof("leader election: %s leads", leader)
				c.leader.set(func(l *leaderState) { l.leader = leader })
			},
		},
	})
	if err != nil { // only a bad config, which TopologyOptions rejects first
		klog.Errorf("leader election: %v", err)
		return
	}
	go func() {
		for ctx.Err() == nil {
			elector.Run(ctx) // returns when leadership is lost or ctx ends
		}
	}()
}

// lead writes shadow Services, emits Events and keeps the DNS patch
// (--patch-dns, dns.go) until ctx ends. The first rebuild it asks for
// enqueues every difference.
func (c *Controller) lead(ctx context.Context) {
	c.leader.set(func(l *leaderState) { l.leading = true })
	w := newShadowWriter(c)
	if c.cfg.ChooseClusterIPs {
		ips, err := servicePicker(ctx, c.clients.kube)
		if err != nil {
			klog.Infof("shadow services: the apiserver allocates their ClusterIPs (the Service CIDR is unknown: %v)", err)
		} else {
			klog.Infof("shadow services: ClusterIPs chosen in %s", ips.Prefix())
		}
		w.ips = ips
	}
	w.run(ctx, c.cfg.Workers)
	c.events.reset()
	c.writer.Store(w)
	c.metrics.leader.Set(1)
	c.rebuilds.Add(rebuildKey)
	if c.dns != nil {
		go c.dns.run(ctx)
	}
	<-ctx.Done()
	c.writer.CompareAndSwap(w, nil)
	c.metrics.leader.Set(0)
}
