package dns

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

// TestWatcherRepairsDrift patches at start, then repairs an overwrite of
// the Corefile as soon as the ConfigMap event arrives, reporting it as
// drift; the initial patch is not drift.
func TestWatcherRepairsDrift(t *testing.T) {
	original := readTestdata(t, "coredns-1.11.in.Corefile")
	c := fake.NewSimpleClientset(
		coreDNSDeployment("coredns", map[string]string{"k8s-app": "kube-dns"}),
		configMap("coredns", map[string]string{"Corefile": original}),
	)
	p := newPatcher(t, c, Options{}, "")
	events := make(chan Event, 100)
	w := NewWatcher(WatcherOptions{
		Patcher:  p,
		Interval: time.Hour, // only events and the start trigger runs here
		MinDelay: 10 * time.Millisecond,
		MaxDelay: 100 * time.Millisecond,
		OnEvent:  func(ev Event) { events <- ev },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	next := func(what string) Event {
		t.Helper()
		return nextChange(t, ctx, events, what)
	}
	if ev := next("the initial patch"); ev.Drift {
		t.Errorf("the initial patch was reported as drift")
	}
	cm := getCM(t, c, "coredns")
	cm.Data["Corefile"] = original // a managed add-on puts its Corefile back
	if _, err := c.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if ev := next("the repair"); !ev.Drift {
		t.Errorf("the repair was not reported as drift: %+v", ev)
	}
	want, _ := Patch(original, Options{})
	if got := getCM(t, c, "coredns").Data["Corefile"]; got != want {
		t.Errorf("not repaired:\n%s", got)
	}
	st := w.Status()
	if !st.Patched || st.Drifts != 1 || st.Provider != CoreDNS || st.LastError != "" {
		t.Errorf("status = %+v", st)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// TestWatcherRetriesErrors reports an error in the status and keeps
// retrying with backoff until the cluster is fixed.
func TestWatcherRetriesErrors(t *testing.T) {
	c := fake.NewSimpleClientset(coreDNSDeployment("coredns", nil))
	p := newPatcher(t, c, Options{}, "")
	events := make(chan Event, 100)
	w := NewWatcher(WatcherOptions{Patcher: p, Interval: time.Hour, MinDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond,
		OnEvent: func(ev Event) { events <- ev }})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() { _ = w.Run(ctx) }()
	select {
	case ev := <-events:
		if ev.Err == nil {
			t.Fatalf("first run succeeded without a ConfigMap")
		}
	case <-ctx.Done():
		t.Fatal("no run")
	}
	if st := w.Status(); st.Patched || st.LastError == "" {
		t.Errorf("status = %+v", st)
	}
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, configMap("coredns", map[string]string{"Corefile": readTestdata(t, "coredns-1.7.in.Corefile")}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case ev := <-events:
			if ev.Err == nil && ev.Result.Changed {
				if ev.Drift {
					t.Errorf("the first successful patch was reported as drift")
				}
				return
			}
		case <-ctx.Done():
			t.Fatal("never patched after the ConfigMap appeared")
		}
	}
}

// TestWatcherNewRulesAreNotDrift: new exact rules (a service got a hashed
// shadow name) are written at once on Notify, and that write is not drift.
func TestWatcherNewRulesAreNotDrift(t *testing.T) {
	original := readTestdata(t, "coredns-1.11.in.Corefile")
	c := fake.NewSimpleClientset(
		coreDNSDeployment("coredns", map[string]string{"k8s-app": "kube-dns"}),
		configMap("coredns", map[string]string{"Corefile": original}),
	)
	p := newPatcher(t, c, Options{}, "")
	events := make(chan Event, 100)
	w := NewWatcher(WatcherOptions{Patcher: p, Interval: time.Hour, MinDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond,
		OnEvent: func(ev Event) { events <- ev }})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() { _ = w.Run(ctx) }()
	nextChange(t, ctx, events, "the initial patch")
	rule := ExactRule{Service: types.NamespacedName{Namespace: "team--a", Name: "api"}, Shadow: "api--team--a"}
	if errs := p.SetExactRules([]ExactRule{rule}); len(errs) > 0 {
		t.Fatal(errs)
	}
	w.Notify()
	if ev := nextChange(t, ctx, events, "the new rule"); ev.Drift {
		t.Errorf("writing a new rule was reported as drift")
	}
	if got := getCM(t, c, "coredns").Data["Corefile"]; !strings.Contains(got, "name exact api.team--a.mesh.") {
		t.Errorf("the new rule is not in the Corefile:\n%s", got)
	}
	if st := w.Status(); st.Drifts != 0 {
		t.Errorf("status = %+v, want no drift", st)
	}
}

// TestWatcherWatchesTheConfigMapsItReadsByName: the Watcher lists and
// watches only the ConfigMaps its runs read, each by name, so RBAC can
// grant list and watch on those names alone.
func TestWatcherWatchesTheConfigMapsItReadsByName(t *testing.T) {
	c := fake.NewSimpleClientset(
		coreDNSDeployment("coredns", map[string]string{"k8s-app": "kube-dns"}),
		configMap("coredns", map[string]string{"Corefile": readTestdata(t, "coredns-1.11.in.Corefile")}),
	)
	p := newPatcher(t, c, Options{}, "")
	w := NewWatcher(WatcherOptions{Patcher: p, Interval: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() { _ = w.Run(ctx) }()
	for {
		var selectors []string
		for _, a := range c.Actions() {
			if l, ok := a.(clienttesting.ListAction); ok && a.GetResource().Resource == "configmaps" {
				selectors = append(selectors, l.GetListRestrictions().Fields.String())
			}
		}
		if len(selectors) > 0 {
			if len(selectors) != 1 || selectors[0] != "metadata.name=coredns" {
				t.Fatalf("ConfigMap lists with field selectors %q, want one by metadata.name=coredns", selectors)
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("the Watcher never listed the Corefile's ConfigMap")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// nextChange returns the next run that changed something, failing the test
// on a failed run or when ctx ends first.
func nextChange(t *testing.T, ctx context.Context, events <-chan Event, what string) Event {
	t.Helper()
	for {
		select {
		case ev := <-events:
			if ev.Err != nil {
				t.Fatalf("run failed: %v", ev.Err)
			}
			if ev.Result.Changed {
				return ev
			}
		case <-ctx.Done():
			t.Fatalf("no change reported while waiting for %s", what)
		}
	}
}
