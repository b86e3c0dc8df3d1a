package udpproxy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/pkg/proxy/accesslog"
	"github.com/nodemesh/nodemesh/pkg/proxy/accesslog/accesslogtest"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// TestEdgeDatagramsAndSessionLog: datagrams of a known pod's session count
// on its workload's edge with the backend the session is bound to, and the
// session's end writes one access log line with its datagram counts.
func TestEdgeDatagramsAndSessionLog(t *testing.T) {
	backend := echoServer(t, "dns-v2")
	var out accesslogtest.Buffer
	log := accesslog.New(accesslog.Options{Writer: &out})
	m := newTestManager(t, Options{EdgeMetrics: true, AccessLog: log, IdleTimeout: 200 * time.Millisecond})
	port := freePort(t)
	r := routeOf("dns", port, backend)
	r.Backends[0].Service.Name = "dns-v2"
	tb := tableOf(r)
	tb.Pods = []table.Pod{{IP: "127.0.0.1", Namespace: "shop", Name: "client-1", ServiceAccount: "client", Workload: "Deployment/client"}}
	if err := m.Apply(tb); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, port)
	for _, msg := range []string{"a", "b", "c"} {
		if got := c.ask(msg, testTimeout); got != "dns-v2:"+msg {
			t.Fatalf("reply %q", got)
		}
	}
	src := []string{"shop", "Deployment/client", "client", "test", "dns", "dns-v2"}
	if up, down := waitCount(3, m.edges.datagrams, append(src, "to_backend")...), waitCount(3, m.edges.datagrams, append(src, "to_client")...); up != 3 || down != 3 {
		t.Errorf("edge datagrams to_backend %v to_client %v, want 3 and 3", up, down)
	}
	deadline := time.Now().Add(testTimeout)
	for !strings.Contains(out.String(), "\n") {
		if time.Now().After(deadline) {
			t.Fatal("no access log line after the session expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var e struct {
		Protocol                         string
		Source                           struct{ Workload string }
		Destination                      struct{ Service, Backend, Endpoint string }
		DatagramsReceived, DatagramsSent int64
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out.String())), &e); err != nil {
		t.Fatal(err)
	}
	if e.Protocol != "udp" || e.Source.Workload != "Deployment/client" || e.Destination.Backend != "dns-v2" ||
		e.Destination.Endpoint != backend || e.DatagramsReceived != 3 || e.DatagramsSent != 3 {
		t.Errorf("access log entry %+v from %s", e, out.String())
	}
	// The service leaves the table: its edge series go.
	if err := m.Apply(tableOf()); err != nil {
		t.Fatal(err)
	}
	if n := len(gatherNames(t, m)); n != 0 {
		t.Errorf("%d edge series remain after the service left", n)
	}
}

// gatherNames lists the edge datagram series left.
func gatherNames(t *testing.T, m *Manager) []string {
	t.Helper()
	ch := make(chan prometheus.Metric, 100)
	m.edges.datagrams.Collect(ch)
	close(ch)
	var out []string
	for x := range ch {
		out = append(out, x.Desc().String())
	}
	return out
}
