package distribution

import (
	"fmt"
	"slices"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// benchTable is the controller benchmark's shape: n HTTP services of 5
// endpoints, an 80/20 split on every tenth, 5 pods each.
func benchTable(n int) *table.Table {
	t := &table.Table{Schema: table.SchemaVersion, Version: 1}
	endpoints := func(i int) []table.Endpoint {
		var out []table.Endpoint
		for k := range 5 {
			out = append(out, table.Endpoint{Address: fmt.Sprintf("10.%d.%d.%d:8080", 100+i/50000, (i*5+k)/250%200, (i*5+k)%250+1), Node: "node-a"})
		}
		return out
	}
	for i := range n {
		name := fmt.Sprintf("svc-%05d", i)
		r := table.HTTPRoute{Service: table.ServiceRef{Namespace: "bench", Name: name}, Port: 80, DefaultPort: true, Scheme: table.SchemeHTTP,
			Hosts:    []string{name + ".bench.mesh", fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)},
			Backends: []table.Backend{{Service: table.ServiceRef{Namespace: "bench", Name: name}, Weight: 1, Endpoints: endpoints(i)}}}
		if i%10 == 0 {
			r.Backends = []table.Backend{
				{Service: table.ServiceRef{Namespace: "bench", Name: fmt.Sprintf("svc-%05d", (i+1)%n)}, Weight: 80, Endpoints: endpoints((i + 1) % n)},
				{Service: table.ServiceRef{Namespace: "bench", Name: fmt.Sprintf("svc-%05d", (i+2)%n)}, Weight: 20, Endpoints: endpoints((i + 2) % n)},
			}
		}
		t.HTTP = append(t.HTTP, r)
		for k := range 5 {
			ep := endpoints(i)[k]
			t.Pods = append(t.Pods, table.Pod{IP: ep.Address[:len(ep.Address)-5], Namespace: "bench", Name: fmt.Sprintf("%s-%d", name, k), ServiceAccount: "default", Node: "node-a", Workload: "Deployment/" + name})
		}
	}
	slices.SortFunc(t.Pods, func(a, b table.Pod) int {
		if a.IP < b.IP {
			return -1
		}
		if a.IP > b.IP {
			return 1
		}
		return 0
	})
	return t
}

// weightEdit returns t with the first split's weights changed.
func weightEdit(t *table.Table) *table.Table {
	c := *t
	c.HTTP = slices.Clone(t.HTTP)
	c.HTTP[0].Backends = slices.Clone(c.HTTP[0].Backends)
	c.HTTP[0].Backends[0].Weight, c.HTTP[0].Backends[1].Weight = 70, 30
	c.Version++
	return &c
}

// BenchmarkProxyDecodeWholeTable and BenchmarkProxyApplyDelta compare what
// a proxy spends to read one TrafficSplit weight edit among 1,000 services:
// the whole table, or a delta against the table it holds.
func BenchmarkProxyDecodeWholeTable(b *testing.B) {
	body, _ := table.Encode(weightEdit(benchTable(1000)))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := table.Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProxyApplyDelta(b *testing.B) {
	base := benchTable(1000)
	benchApply(b, base, weightEdit(base), nil)
}

// BenchmarkProxyApplyDeltaNoRuns is the same delta for a client that does
// not read runs (a number for every unchanged route).
func BenchmarkProxyApplyDeltaNoRuns(b *testing.B) {
	base := benchTable(1000)
	var enc table.Encoder
	cur := weightEdit(base)
	bp, _ := enc.EncodeParts(base)
	cp, _ := enc.EncodeParts(cur)
	benchApplyBody(b, base, encodeDelta(cp, cur.Version, bp, base.Version, nil, false))
}

// benchApply measures a proxy holding base applying cur's delta, made with
// the pods' steps given (nil: the pods, if changed, go whole), with runs
// as the Client asks for them.
func benchApply(b *testing.B, base, cur *table.Table, steps []podStep) {
	var enc table.Encoder
	bp, _ := enc.EncodeParts(base)
	cp, _ := enc.EncodeParts(cur)
	benchApplyBody(b, base, encodeDelta(cp, cur.Version, bp, base.Version, steps, true))
}

func benchApplyBody(b *testing.B, base *table.Table, body []byte) {
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ApplyDelta(base, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServerPublishEdit is the server's side of one weight edit
// among 1,000 services: encoding the table's parts and body, then the
// delta the proxies ask for.
func BenchmarkServerPublishEdit(b *testing.B) {
	s := NewServer(ServerOptions{InitialVersion: 1})
	t := benchTable(1000)
	s.Publish(t)
	b.ReportAllocs()
	for b.Loop() {
		prev := s.Version()
		t = weightEdit(t)
		t.HTTP[0].Backends[0].Weight = int32(1 + int(prev)%90)
		s.Publish(t)
		s.mu.Lock()
		snap := s.snap
		s.mu.Unlock()
		if s.delta(snap, pollQuery{version: prev, delta: true, runs: true}) == nil {
			b.Fatal("no delta")
		}
	}
}

// newPods returns t with five more pods, as a new Service's pods add.
func newPods(t *table.Table) *table.Table {
	c := *t
	c.Version = t.Version + 1
	c.Pods = slices.Clone(t.Pods)
	for k := range 5 {
		c.Pods = append(c.Pods, table.Pod{IP: fmt.Sprintf("10.250.0.%d", k+1), Namespace: "bench", Name: fmt.Sprintf("new-%d", k), ServiceAccount: "default", Node: "node-a", Workload: "Deployment/new"})
	}
	return &c
}

// BenchmarkProxyApplyPodsWhole and BenchmarkProxyApplyPodChanges compare
// what a proxy spends to read five new pods among 15,000 (3,000 services):
// a delta carrying the whole pod list, or only the pods' changes.
func BenchmarkProxyApplyPodsWhole(b *testing.B) {
	base := benchTable(3000)
	benchApply(b, base, newPods(base), nil)
}

func BenchmarkProxyApplyPodChanges(b *testing.B) {
	base := benchTable(3000)
	cur := newPods(base)
	benchApply(b, base, cur, []podStep{stepBetween(base.Pods, cur.Pods, false)})
}
