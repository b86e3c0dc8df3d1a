package integration_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/integration/harness"
)

// checkPodIPReuse is the churn part of TestACLThroughProxy:
//   - the authorized client pod is deleted: its open TCP connection and UDP
//     session end with the next table (they would otherwise last until the
//     idle timeouts, an hour and a minute);
//   - its IP is reused by a pod of the forbidden service account, which
//     gets that account's rights and none of the old pod's;
//   - a new authorized pod gets its access as fast as any other change.
func checkPodIPReuse(t *testing.T, c *harness.Cluster, node *harness.Node, proxy *proxyProcess, clientPod *harness.Pod, client *meshClient, echoTCP, echoUDP int32, clientUDP *udpClient) {
	t.Log("pod deleted: its open TCP connection and UDP session end with the next table")
	conn, err := client.dialTCP(echoTCP)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got, err := echoOn(conn, "before"); err != nil || got != "before" {
		t.Fatalf("TCP before the deletion: %q %v", got, err)
	}
	if got, err := udpAsk(clientUDP, "before", 2*time.Second); err != nil || got != "before" {
		t.Fatalf("UDP before the deletion: %q %v", got, err)
	}
	activeTCP := `nodemesh_proxy_tcp_active_connections{namespace="shop",service="echo"}`
	activeUDP := `nodemesh_proxy_udp_sessions_active{namespace="shop",service="echo"}`
	waitUntil(t, 5*time.Second, "one TCP connection and one UDP session open", func() bool {
		return proxyMetric(t, proxy, activeTCP) == 1 && proxyMetric(t, proxy, activeUDP) == 1
	})
	deleted := time.Now()
	clientPod.Delete(t)
	waitUntil(t, 10*time.Second, "the deleted pod's TCP connection and UDP session to end", func() bool {
		return proxyMetric(t, proxy, activeTCP) == 0 && proxyMetric(t, proxy, activeUDP) == 0
	})
	t.Logf("the deleted pod's connection and session ended %v after the deletion", time.Since(deleted).Round(time.Millisecond))

	t.Log("IP reused by a pod of another service account: that account's rights, none of the old ones")
	reusedPod := c.StartPod(t, harness.PodSpec{Namespace: "shop", Name: "intruder-1", Node: node.Name, ServiceAccount: "intruder", IP: clientPod.IP})
	ready := time.Now()
	reused := newMeshClient(t, reusedPod, node)
	waitUntil(t, settle, "the reused IP to get shop/intruder's rights", func() bool {
		r := reused.do("GET", "open.shop.mesh", "/")
		return r.code == 200 && r.who.Pod == "open-0"
	})
	t.Logf("the reused IP had its new pod's rights %v after the pod was Ready", time.Since(ready).Round(time.Millisecond))
	if r := reused.do("GET", "web.shop.mesh", "/api/items"); r.code != 403 || !strings.HasPrefix(r.body, "no TrafficTarget allows shop/intruder to reach shop/web") {
		t.Errorf("reused IP on web: %v, want 403 naming shop/intruder", r)
	}
	if got, err := reused.tcpEcho(echoTCP, "ping"); err == nil {
		t.Errorf("reused IP's TCP connection echoed %q, want it closed", got)
	}
	if got, err := udpAsk(reused.udpSocket(echoUDP), "ping", 300*time.Millisecond); err == nil {
		t.Errorf("reused IP got a UDP reply %q", got)
	}

	t.Log("a new authorized pod gets access as fast as any other change")
	newPod := c.StartPod(t, harness.PodSpec{Namespace: "shop", Name: "client-1", Node: node.Name, ServiceAccount: "client"})
	ready = time.Now()
	fresh := newMeshClient(t, newPod, node)
	waitUntil(t, settle, "the new client pod to reach web", func() bool {
		return fresh.do("GET", "web.shop.mesh", "/api/items").code == 200
	})
	t.Logf("the new client pod had access %v after it was Ready", time.Since(ready).Round(time.Millisecond))
	if got, err := fresh.tcpEcho(echoTCP, "ping"); err != nil || got != "ping" {
		t.Errorf("new client pod over TCP: %q %v", got, err)
	}
}
