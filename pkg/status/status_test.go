package status

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/edgestats"
	"github.com/nodemesh/nodemesh/pkg/shadow"
	"github.com/nodemesh/nodemesh/pkg/table"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

func fixture() Input {
	web := &topology.Service{Namespace: "shop", Name: "web", MeshName: "web.shop.mesh", Aliases: []string{"web.shop.maesh"},
		TrafficType: "http", ShadowName: "web--shop", ShadowClusterIPs: []string{"10.96.0.10"}, Split: "canary",
		Ports: []*topology.ServicePort{
			{Port: 80, Protocol: shadow.KindHTTP, Endpoints: []topology.Endpoint{
				{IP: "10.244.2.1", Port: 80, Ready: true, Node: "node-b"},
				{IP: "10.244.1.1", Port: 80, Ready: true, Node: "node-a"},
				{IP: "10.244.1.2", Port: 80, Node: "node-a"},
			}},
			{Port: 8080, Protocol: shadow.KindHTTP, Endpoints: []topology.Endpoint{{IP: "10.244.1.1", Port: 80, Ready: true, Node: "node-a"}}},
		}}
	db := &topology.Service{Namespace: "shop", Name: "db", MeshName: "db.shop.mesh", TrafficType: "tcp", ShadowName: "db--shop",
		Ports: []*topology.ServicePort{{Port: 5432, Protocol: shadow.KindTCP, ProxyPort: 10000}}}
	other := &topology.Service{Namespace: "other", Name: "web", MeshName: "web.other.mesh", TrafficType: "http", ShadowName: "web--other"}
	topo := &topology.Topology{
		Options:  topology.Options{}.WithDefaults(),
		Services: []*topology.Service{other, db, web},
		Splits: []*topology.Split{{Namespace: "shop", Name: "canary", Service: "web", Active: true,
			Backends: []topology.SplitBackend{{Service: "web-v1", Weight: 3}, {Service: "web-v2", Weight: 1}},
			Leaves:   []topology.SplitBackend{{Service: "web-v1", Weight: 75}, {Service: "web-v2", Weight: 25}}}},
		Errors: []topology.ObjectError{{Kind: "Service", Namespace: "shop", Name: "db", Message: "annotation nodemesh.io/retry-attempts: bad"}},
	}
	tbl := &table.Table{ACL: true,
		HTTP: []table.HTTPRoute{{Service: table.ServiceRef{Namespace: "shop", Name: "web"}, Port: 80, Allow: []table.HTTPAllow{
			{Sources: []table.Identity{{Namespace: "shop", ServiceAccount: "client"}}, Matches: []table.HTTPMatch{{Methods: []string{"GET"}, PathRegex: "/api"}, {}}},
		}}},
		TCP: []table.StreamRoute{{Service: table.ServiceRef{Namespace: "shop", Name: "db"}, Port: 5432, ProxyPort: 10000,
			Allow: []table.StreamAllow{{Sources: []table.Identity{{Namespace: "shop", ServiceAccount: "web"}}}}}},
	}
	stats := []edgestats.Stat{
		{Edge: edgestats.Edge{Namespace: "shop", Service: "web", Backend: "web-v1", SourceNamespace: "shop", SourceWorkload: "Deployment/client"}, Requests: 70},
		{Edge: edgestats.Edge{Namespace: "shop", Service: "web", Backend: "web-v1", SourceNamespace: "unknown", SourceWorkload: "unknown"}, Requests: 8},
		{Edge: edgestats.Edge{Namespace: "shop", Service: "web", Backend: "web-v2", SourceNamespace: "shop", SourceWorkload: "Deployment/client"}, Requests: 22},
		{Edge: edgestats.Edge{Namespace: "shop", Service: "web", Backend: "none"}, Requests: 5},
	}
	return Input{Topology: topo, Table: tbl, Stats: stats, EdgeSeries: true}
}

func TestBuild(t *testing.T) {
	in := fixture()
	in.Namespace = "shop"
	got := Build(in)
	if len(got) != 2 || got[0].Name != "db" || got[1].Name != "web" {
		t.Fatalf("services %+v, want shop/db and shop/web", got)
	}
	web := got[1]
	if len(web.Endpoints) != 2 || web.Endpoints[0].Node != "node-a" || web.Endpoints[0].Ready != 1 || web.Endpoints[0].NotReady != 1 ||
		len(web.Endpoints[0].Addresses) != 2 || web.Endpoints[1].Ready != 1 {
		t.Errorf("endpoints %+v", web.Endpoints)
	}
	sp := web.Split
	if sp == nil || !sp.Observed || len(sp.Backends) != 2 {
		t.Fatalf("split %+v", sp)
	}
	// Requests that reached no backend ("none") are not a share of the split.
	if b := sp.Backends[0]; b.Service != "web-v1" || b.Intended != 75 || b.Observed != 78 || b.Requests != 78 {
		t.Errorf("web-v1 %+v", b)
	}
	if b := sp.Backends[1]; b.Intended != 25 || b.Observed != 22 {
		t.Errorf("web-v2 %+v", b)
	}
	if want := "port 80/http: shop/client may GET /api | any request"; len(web.Access.Rules) != 1 || web.Access.Rules[0] != want || !web.Access.Enforced {
		t.Errorf("web access %+v, want %q", web.Access, want)
	}
	if db := got[0]; len(db.Access.Rules) != 1 || db.Access.Rules[0] != "port 5432/tcp: shop/web may connect" || len(db.Errors) != 1 || db.Ports[0].ProxyPort != 10000 {
		t.Errorf("db %+v", db)
	}
}

func TestObservedIsNAWithoutEdgeSeries(t *testing.T) {
	in := fixture()
	in.EdgeSeries = false
	in.Name = "web"
	got := Build(in)
	if len(got) != 2 {
		t.Fatalf("name filter across namespaces: %d services", len(got))
	}
	var b bytes.Buffer
	if err := WriteText(&b, got[1:]); err != nil {
		t.Fatal(err)
	}
	want := `shop/web
  mesh names:    web.shop.mesh, web.shop.maesh
  traffic type:  http
  shadow:        nodemesh/web--shop 10.96.0.10
  ports:         80/http, 8080/http
  endpoints:     node-a: 1 ready, 1 not ready (10.244.1.1:80, 10.244.1.2:80)
                 node-b: 1 ready (10.244.2.1:80)
  split canary:  web-v1 weight 75 intended 75.0% observed n/a
                 web-v2 weight 25 intended 25.0% observed n/a
  access:        port 80/http: shop/client may GET /api | any request
`
	if b.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := WriteJSON(&b, got); err != nil {
		t.Fatal(err)
	}
	var back []Service
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || len(back) != 2 || back[1].Split.Observed {
		t.Errorf("JSON: %v %+v", err, back)
	}
}

func TestAccessNotEnforced(t *testing.T) {
	in := fixture()
	in.Table.ACL = false
	in.Namespace, in.Name = "other", "web"
	var b bytes.Buffer
	if err := WriteText(&b, Build(in)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b.Bytes(), []byte("access:        not enforced: every source may call")) || !bytes.Contains(b.Bytes(), []byte("endpoints:     none")) {
		t.Errorf("text:\n%s", b.String())
	}
}
