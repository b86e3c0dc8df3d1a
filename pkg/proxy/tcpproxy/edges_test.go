package tcpproxy

import (
	"encoding/json"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/pkg/proxy/accesslog"
	"github.com/nodemesh/nodemesh/pkg/proxy/accesslog/accesslogtest"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// counterValues returns family name's samples as "labels" -> value.
func counterValues(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var parts []string
			for _, l := range m.GetLabel() {
				parts = append(parts, l.GetName()+"="+l.GetValue())
			}
			out[strings.Join(parts, ",")] = m.GetCounter().GetValue()
		}
	}
	return out
}

// TestEdgeMetricsAndAccessLog: connections from a known pod (127.0.0.1 in
// this test's table) count on its workload's edge with the backend they
// reached and their bytes; a refused one counts with backend none; each
// connection has an access log line.
func TestEdgeMetricsAndAccessLog(t *testing.T) {
	echo := nameServer(t, "echo-v2")
	var out accesslogtest.Buffer
	log := accesslog.New(accesslog.Options{Writer: &out})
	var refuse atomic.Bool
	m, reg := newTestManager(t, Options{
		EdgeMetrics: true, AccessLog: log,
		Admit: func(*table.Table, *table.StreamRoute, netip.Addr) bool { return !refuse.Load() },
	})
	port := freePort(t)
	tb := tableOf(streamRoute("echo", port, backendOf("echo-v1", 0), backendOf("echo-v2", 100, echo.addr)))
	tb.Pods = []table.Pod{{IP: "127.0.0.1", Namespace: "shop", Name: "client-1", ServiceAccount: "client", Workload: "Deployment/client"}}
	if err := m.Apply(tb); err != nil {
		t.Fatal(err)
	}
	c := dial(t, port)
	if got := c.line(); got != "echo-v2" {
		t.Fatalf("first line %q", got)
	}
	if got := c.echo("hello"); got != "hello" {
		t.Fatalf("echo %q", got)
	}
	c.c.Close()
	refuse.Store(true)
	refused := dial(t, port)
	if got := refused.line(); !strings.HasPrefix(got, "error") {
		t.Fatalf("refused connection read %q", got)
	}
	src := "service=echo,source_namespace=shop,source_service_account=client,source_workload=Deployment/client"
	deadline := time.Now().Add(testTimeout)
	for {
		conns := counterValues(t, reg, "nodemesh_proxy_edge_tcp_connections_total")
		bytes := counterValues(t, reg, "nodemesh_proxy_edge_tcp_bytes_total")
		okConns := conns["backend=echo-v2,namespace=test,result=ok,"+src] == 1 && conns["backend=none,namespace=test,result=denied,"+src] == 1 && len(conns) == 2
		// "echo-v2\n" then "hello\n" back; "hello\n" there.
		okBytes := bytes["backend=echo-v2,direction=to_client,namespace=test,"+src] == 14 && bytes["backend=echo-v2,direction=to_backend,namespace=test,"+src] == 6
		lines := strings.Count(out.String(), "\n")
		if okConns && okBytes && lines == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge series: connections %v bytes %v; access log:\n%s", conns, bytes, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var first struct {
		Protocol    string
		Source      struct{ Workload string }
		Destination struct {
			Service, Backend, Endpoint string
		}
		Result                   string
		BytesReceived, BytesSent int64
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, `"result":"ok"`) {
			if err := json.Unmarshal([]byte(line), &first); err != nil {
				t.Fatal(err)
			}
		}
	}
	if first.Protocol != "tcp" || first.Source.Workload != "Deployment/client" || first.Destination.Backend != "echo-v2" ||
		first.Destination.Endpoint != echo.addr || first.Result != "ok" || first.BytesReceived != 6 || first.BytesSent != 14 {
		t.Errorf("access log entry: %+v", first)
	}
}
