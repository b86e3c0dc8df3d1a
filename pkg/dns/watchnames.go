package dns

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// nameWatches runs one informer per ConfigMap the Patcher's runs have read
// (the Corefile's, AKS's coredns-custom, kube-dns's), each on that one
// object through a metadata.name field selector. A namespace-wide
// ConfigMap informer would need list and watch on every ConfigMap of
// kube-system; per name, RBAC can grant them on those names only
// (resourceNames), as it grants get and update. A name is watched from the
// first run that reads it until the Watcher stops.
type nameWatches struct {
	p         *Patcher
	notify    func()
	started   map[string]bool
	factories []informers.SharedInformerFactory
}

func newNameWatches(p *Patcher, notify func()) *nameWatches {
	return &nameWatches{p: p, notify: notify, started: map[string]bool{}}
}

// update starts an informer for each name read since the last call.
func (n *nameWatches) update(stop <-chan struct{}) {
	for _, name := range n.p.watchedNames() {
		if n.started[name] {
			continue
		}
		n.started[name] = true
		selector := fields.OneTermEqualSelector(metav1.ObjectNameField, name).String()
		f := informers.NewSharedInformerFactoryWithOptions(n.p.o.Client, 0, informers.WithNamespace(n.p.o.Namespace),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = selector }))
		notify := func(any) { n.notify() }
		// The handler cannot fail to register on an informer not yet started.
		_, _ = f.Core().V1().ConfigMaps().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    notify,
			UpdateFunc: func(_, obj any) { notify(obj) },
			DeleteFunc: notify,
		})
		f.Start(stop)
		n.factories = append(n.factories, f)
	}
}

// shutdown waits for the informers' goroutines, once stop is closed.
func (n *nameWatches) shutdown() {
	for _, f := range n.factories {
		f.Shutdown()
	}
}

// watchedNames lists the ConfigMaps the last run found, sorted.
func (p *Patcher) watchedNames() []string {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	names := make([]string, 0, len(p.watched))
	for name := range p.watched {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
