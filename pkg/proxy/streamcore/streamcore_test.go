package streamcore

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodemesh/nodemesh/pkg/proxy/balance"
	"github.com/nodemesh/nodemesh/pkg/proxy/edges"
	"github.com/nodemesh/nodemesh/pkg/table"
)

func streamRoute() *table.StreamRoute {
	return &table.StreamRoute{
		Service:   table.ServiceRef{Namespace: "shop", Name: "db"},
		ProxyPort: 10000,
		Backends: []table.Backend{{
			Service: table.ServiceRef{Namespace: "shop", Name: "db-v2"}, Weight: 1,
			Endpoints: []table.Endpoint{{Address: "10.0.0.1:5432"}},
		}},
	}
}

func TestIdleTimeout(t *testing.T) {
	sr := streamRoute()
	if got := IdleTimeout(sr, time.Hour); got != time.Hour {
		t.Errorf("without a route timeout: %v, want 1h", got)
	}
	sr.IdleTimeout = table.Duration(time.Minute)
	if got := IdleTimeout(sr, time.Hour); got != time.Minute {
		t.Errorf("with a route timeout: %v, want 1m", got)
	}
}

func TestBalanceOnlyWithLocalityAndFromThePortsSet(t *testing.T) {
	sr := streamRoute()
	asked := []int32{}
	prev := func(port int32) *balance.Set { asked = append(asked, port); return nil }
	if bal, err := Balance(&table.Table{}, sr, "node-a", prev); bal != nil || err != nil || len(asked) != 0 {
		t.Fatalf("without locality: %v, %v, asked %v; want nil, nil, not asked", bal, err, asked)
	}
	sr.Locality = &table.Locality{Prefer: table.LocalityNode}
	first, err := Balance(&table.Table{}, sr, "node-a", prev)
	if first == nil || err != nil || len(asked) != 1 || asked[0] != 10000 {
		t.Fatalf("with locality: %v, %v, asked %v; want a Set, nil, asked for 10000", first, err, asked)
	}
	if first.Pick(nil) == nil { // one open connection on the endpoint
		t.Fatal("no endpoint picked")
	}
	next, err := Balance(&table.Table{}, sr, "node-a", func(int32) *balance.Set { return first })
	if err != nil || next == nil {
		t.Fatalf("reload: %v, %v", next, err)
	}
	if snap := next.Snapshot(); len(snap) != 1 || snap[0].InFlight != 1 {
		t.Errorf("reload: endpoint states %+v, want the open connection counted", snap)
	}
	sr.Backends[0].Endpoints[0].Address = "db:5432"
	if _, err := Balance(&table.Table{}, sr, "node-a", prev); err == nil {
		t.Error("bad backends: no error")
	}
}

func TestNewEdges(t *testing.T) {
	if e := NewEdges(false, nil, nil); e != nil {
		t.Errorf("neither metrics nor log: %+v, want nil", e)
	}
	shared := new(edges.Resolver)
	if e := NewEdges(true, nil, shared); e == nil || e.Resolver != shared || !e.On {
		t.Errorf("metrics with a shared resolver: %+v", e)
	}
	if e := NewEdges(true, nil, nil); e == nil || e.Resolver == nil {
		t.Errorf("metrics without a resolver: %+v, want one of its own", e)
	}
}

func TestEdgeRouteBackend(t *testing.T) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edge_test_total"},
		append(append([]string{}, edges.SourceLabels...), edges.LabelNamespace, edges.LabelService, edges.LabelBackend, "direction"))
	e := NewEdges(true, nil, nil)
	e.Series = edges.NewSeries(vec.MetricVec)
	tb := &table.Table{Pods: []table.Pod{{IP: "10.1.0.1", Namespace: "shop", Name: "web-1", ServiceAccount: "web", Workload: "Deployment/web"}}}
	sr := streamRoute()
	r := NewEdgeRoute(e, tb, sr, func(lv []string) *prometheus.Counter {
		c := vec.WithLabelValues(append(lv, "up")...)
		return &c
	})
	src := r.Sources.Lookup(netip.MustParseAddr("10.1.0.1"))
	name, c := r.Backend(src, netip.MustParseAddrPort("10.0.0.1:5432"))
	if name != "db-v2" || c == nil {
		t.Fatalf("Backend = %q, %v; want db-v2 and its counter", name, c)
	}
	(*c).Inc()
	if n := testutil.ToFloat64(vec.WithLabelValues("shop", "Deployment/web", "web", "shop", "db", "db-v2", "up")); n != 1 {
		t.Errorf("edge counter %v, want 1", n)
	}
	if name, c := r.Backend(src, netip.MustParseAddrPort("10.0.0.9:5432")); name != edges.UnknownValue || c != nil {
		t.Errorf("unknown endpoint: %q, %v", name, c)
	}

	logOnly := &Edges{Resolver: new(edges.Resolver)} // access log, no edge metrics
	off := NewEdgeRoute(logOnly, tb, sr, func([]string) *prometheus.Counter { t.Fatal("children made with metrics off"); return nil })
	if name, c := off.Backend(src, netip.MustParseAddrPort("10.0.0.1:5432")); name != "db-v2" || c != nil {
		t.Errorf("metrics off: %q, %v; want db-v2, nil", name, c)
	}
}
