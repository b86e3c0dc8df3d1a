package table

import (
	"strings"
	"testing"
)

// validTable is a small table that passes Validate; each case breaks one
// thing in a copy of it.
func validTable() *Table {
	be := func(name string, w int32, addrs ...string) Backend {
		b := Backend{Service: ServiceRef{Namespace: "shop", Name: name}, Weight: w}
		for _, a := range addrs {
			b.Endpoints = append(b.Endpoints, Endpoint{Address: a})
		}
		return b
	}
	return &Table{
		Schema: SchemaVersion,
		HTTP: []HTTPRoute{{
			Service:     ServiceRef{Namespace: "shop", Name: "web"},
			Port:        80,
			Hosts:       []string{"10.96.0.10", "web.shop.mesh"},
			DefaultPort: true,
			Scheme:      SchemeHTTP,
			Matches: []HTTPMatchRoute{{
				Name:     "rg/api",
				Match:    HTTPMatch{PathRegex: "/api", Methods: []string{"GET"}, Headers: []HeaderMatch{{Name: "X-Canary", Regex: "yes"}}},
				Backends: []Backend{be("web-v2", 1, "10.244.1.3:8080")},
			}},
			Backends:   []Backend{be("web", 9, "10.244.1.1:8080", "10.244.1.2:8080"), be("web-v2", 1, "10.244.1.3:8080")},
			Middleware: Middleware{RetryAttempts: 3, CircuitBreaker: "NetworkErrorRatio() > 0.5", RateLimit: &RateLimit{Average: 100, Burst: 200}},
		}},
		TCP: []StreamRoute{{Service: ServiceRef{Namespace: "shop", Name: "db"}, Port: 5432, ProxyPort: 10000, Backends: []Backend{be("db", 1, "10.244.1.4:5432")}}},
		UDP: []StreamRoute{{Service: ServiceRef{Namespace: "shop", Name: "dns"}, Port: 53, ProxyPort: 11000, Backends: []Backend{be("dns", 1, "10.244.1.5:53")}}},
		Pods: []Pod{
			{IP: "10.244.1.1", Namespace: "shop", Name: "web-1", ServiceAccount: "web", Node: "node-a", Workload: "Deployment/web"},
			{IP: "10.244.1.2", Namespace: "shop", Name: "web-2", ServiceAccount: "web", Node: "node-a", Workload: "Deployment/web"},
			{IP: "10.244.1.9", Namespace: "shop", Name: "debug", ServiceAccount: "default", Workload: "Pod/debug"},
		},
	}
}

func TestValidateAcceptsAGoodTable(t *testing.T) {
	if err := Validate(validTable()); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestValidateRejectsBadTables(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(*Table)
		want   []string // substrings the error must hold
	}{
		{"unknown schema", func(t *Table) { t.Schema = 2 }, []string{"unknown schema 2"}},
		{"duplicate route", func(t *Table) {
			r := t.HTTP[0]
			r.Hosts = []string{"other.shop.mesh"}
			r.DefaultPort = false
			t.HTTP = append(t.HTTP, r)
		}, []string{"http route shop/web port 80", "duplicate route"}},
		{"duplicate host and port", func(t *Table) {
			r := t.HTTP[0]
			r.Service.Name = "web2"
			r.DefaultPort = false
			t.HTTP = append(t.HTTP, r)
		}, []string{"http route shop/web2 port 80", "duplicate host web.shop.mesh port 80", "already served by http route shop/web port 80"}},
		{"two default ports for a host", func(t *Table) {
			r := t.HTTP[0]
			r.Port = 8080
			t.HTTP = append(t.HTTP, r)
		}, []string{"http route shop/web port 8080", "two default ports"}},
		{"unknown scheme", func(t *Table) { t.HTTP[0].Scheme = "grpc" }, []string{"http route shop/web port 80", `unknown scheme "grpc"`}},
		{"bad path regex", func(t *Table) { t.HTTP[0].Matches[0].Match.PathRegex = "(" }, []string{`match 0 "rg/api"`, "bad pathRegex"}},
		{"bad header regex", func(t *Table) { t.HTTP[0].Matches[0].Match.Headers[0].Regex = "[" }, []string{"header X-Canary: bad regex"}},
		{"lower-case method", func(t *Table) { t.HTTP[0].Matches[0].Match.Methods = []string{"get"} }, []string{`bad method "get"`}},
		{"weight sum 0 with endpoints", func(t *Table) {
			t.HTTP[0].Backends[0].Weight = 0
			t.HTTP[0].Backends[1].Weight = 0
		}, []string{"http route shop/web port 80: backend weights sum to 0"}},
		{"negative weight", func(t *Table) { t.HTTP[0].Backends[1].Weight = -1 }, []string{"backend shop/web-v2: negative weight"}},
		{"bad endpoint", func(t *Table) { t.HTTP[0].Backends[0].Endpoints[0].Address = "pod-a:80" }, []string{`bad endpoint address "pod-a:80"`}},
		{"duplicate endpoint", func(t *Table) { t.HTTP[0].Backends[0].Endpoints[1] = t.HTTP[0].Backends[0].Endpoints[0] }, []string{"duplicate endpoint 10.244.1.1:8080"}},
		{"upper-case host", func(t *Table) { t.HTTP[0].Hosts[1] = "Web.shop.mesh" }, []string{`host "Web.shop.mesh"`}},
		{"host with port", func(t *Table) { t.HTTP[0].Hosts[1] = "web.shop.mesh:80" }, []string{`host "web.shop.mesh:80"`}},
		{"host with trailing dot", func(t *Table) { t.HTTP[0].Hosts[1] = "web.shop.mesh." }, []string{"trailing dot"}},
		{"no hosts", func(t *Table) { t.HTTP[0].Hosts = nil }, []string{"no hosts"}},
		{"port out of range", func(t *Table) { t.HTTP[0].Port = 70000 }, []string{"port 70000 is out of range"}},
		{"bad circuit breaker", func(t *Table) { t.HTTP[0].Middleware.CircuitBreaker = "Bogus() > 1" }, []string{"bad circuitBreaker expression"}},
		{"too many retries", func(t *Table) { t.HTTP[0].Middleware.RetryAttempts = 11 }, []string{"retryAttempts 11 is out of range"}},
		{"zero burst", func(t *Table) { t.HTTP[0].Middleware.RateLimit.Burst = 0 }, []string{"rateLimit needs average > 0 and burst > 0"}},
		{"duplicate tcp proxy port", func(t *Table) {
			r := t.TCP[0]
			r.Service.Name = "db2"
			t.TCP = append(t.TCP, r)
		}, []string{"tcp route shop/db2 port 5432: duplicate tcp proxyPort 10000"}},
		{"udp proxy port 0", func(t *Table) { t.UDP[0].ProxyPort = 0 }, []string{"udp route shop/dns port 53: proxyPort 0"}},
		{"duplicate pod ip", func(t *Table) { t.Pods = append(t.Pods, t.Pods[0]) }, []string{"duplicate pod ip"}},
		{"service without namespace", func(t *Table) { t.TCP[0].Service.Namespace = "" }, []string{"service needs a namespace and a name"}},
		{"source without service account", func(t *Table) {
			t.HTTP[0].Allow = []HTTPAllow{{Sources: []Identity{{Namespace: "shop"}}}}
		}, []string{"allow 0: source identity needs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := validTable()
			tt.break_(tb)
			err := Validate(tb)
			if err == nil {
				t.Fatal("Validate accepted a bad table")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	tb := validTable()
	tb.HTTP[0].Scheme = "ftp"
	tb.TCP[0].ProxyPort = -1
	err := Validate(tb)
	if err == nil || !strings.Contains(err.Error(), "ftp") || !strings.Contains(err.Error(), "proxyPort -1") {
		t.Fatalf("want both problems reported, got %v", err)
	}
}

func TestValidateAllowsEmptyBackends(t *testing.T) {
	// A service whose pods are all down still has a route: it answers 503.
	tb := validTable()
	tb.HTTP[0].Backends = []Backend{{Service: ServiceRef{Namespace: "shop", Name: "web"}, Weight: 0}}
	if err := Validate(tb); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestValidateNil(t *testing.T) {
	if Validate(nil) == nil {
		t.Fatal("nil table accepted")
	}
}
