package integration_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/integration/harness"
)

// TestMultiNodeMesh proves the node-level design on real networking: three
// nodes, each its own network namespace with its own kube-proxy (nftables)
// and `nodemesh proxy` pod, the real CoreDNS patched for the mesh domain, and
// the controller. A client pod resolves web.shop.mesh, connects to the shadow
// ClusterIP, and is always served by its own node's proxy, which reaches the
// backends on every node and sees the client's own IP. Stopping one node's
// proxy leaves the other nodes' clients alone; restarting one under load
// fails no request once it is ready again; and a proxy without a table is
// never Ready, so kube-proxy never sends it anything.
func TestMultiNodeMesh(t *testing.T) {
	c := harness.Start(t, harness.WithNodeNetworks())
	installSMICRDs(t, c)
	createNamespaces(t, c, "nodemesh", "shop")
	names := []string{"node-a", "node-b", "node-c"}
	for _, name := range names {
		c.AddNode(t, name)
	}
	for _, name := range names {
		c.StartKubeProxy(t, name)
	}
	for _, name := range names {
		c.StartPod(t, harness.PodSpec{Namespace: "shop", Name: "web-" + name, Node: name, Labels: map[string]string{"app": "web"}})
	}
	createWebService(t, c, "web", nil)
	startCoreDNS(t, c, "node-c")
	port := freeLoopbackPort(t)
	ctrl := startFixedController(t, c, port)
	controllerURL := fmt.Sprintf("http://%s", netip.AddrPortFrom(c.GatewayIP(), uint16(port)))

	var nodes []*meshNode
	for _, name := range names {
		n := &meshNode{Node: c.Node(name), proxy: startMeshProxy(t, c, name, controllerURL)}
		n.client = c.StartPod(t, harness.PodSpec{Namespace: "shop", Name: "client-" + name, Node: name, Labels: map[string]string{"app": "client"}})
		n.http = newPodMeshClient(n.client)
		nodes = append(nodes, n)
	}
	a, b, cc := nodes[0], nodes[1], nodes[2]
	for _, n := range nodes {
		d := n.proxy.WaitReady(t, settle)
		s := n.proxy.Starts()[0]
		t.Logf("FIGURE proxy on %s: start to /ready passing %s, to Pod Ready %s",
			n.Name, s.Probed.Sub(s.Started).Round(time.Millisecond), d.Round(time.Millisecond))
	}
	for _, n := range nodes {
		waitUntil(t, settle, "web.shop.mesh to answer the client on "+n.Name, func() bool {
			_, err := n.meshGet(t.Context(), "http://web.shop.mesh/")
			return err == nil
		})
	}

	if !t.Run("each client is served by its own node's proxy, which reaches every node", func(t *testing.T) {
		const perClient = 60
		total, local := 0, 0
		for _, n := range nodes {
			before := requestCounts(t, nodes)
			backends := map[string]bool{}
			for range perClient {
				who, err := n.meshGet(t.Context(), "http://web.shop.mesh/")
				if err != nil {
					t.Fatal(err)
				}
				total++
				if by := servingNode(nodes, who); by == n.Name {
					local++
				} else {
					t.Errorf("a request from %s was served by the proxy on %s", n.Name, by)
				}
				if xff := who.Request.Headers.Get("X-Forwarded-For"); xff != n.client.IP.String() {
					t.Errorf("the proxy saw the client on %s as %q, want its pod IP %s", n.Name, xff, n.client.IP)
				}
				backends[who.Pod] = true
			}
			after := requestCounts(t, nodes)
			for _, m := range nodes {
				want := 0.0
				if m == n {
					want = perClient
				}
				if got := after[m.Name] - before[m.Name]; got != want {
					t.Errorf("%d requests from %s: the proxy on %s counted %v, want %v", perClient, n.Name, m.Name, got, want)
				}
			}
			if len(backends) != len(nodes) {
				t.Errorf("the proxy on %s reached only %v, want the web pod of every node", n.Name, backends)
			}
		}
		t.Logf("FIGURE served by the local node's proxy: %d of %d requests (%.1f%%)", local, total, 100*float64(local)/float64(total))
	}) {
		return
	}

	if !t.Run("with node B's proxy stopped, clients on A and C see no failure", func(t *testing.T) {
		b.proxy.Stop(t)
		waitForEndpoints(t, c, "nodemesh", "web--shop", map[string]endpoint{
			a.proxy.IP.String(): readyOn(a.Name), b.proxy.IP.String(): notReadyOn(b.Name), cc.proxy.IP.String(): readyOn(cc.Name),
		})
		failures, sent := 0, 0
		for range 60 {
			for _, n := range []*meshNode{a, cc} {
				sent++
				who, err := n.meshGet(t.Context(), "http://web.shop.mesh/")
				if err != nil {
					failures++
					t.Errorf("client on %s: %v", n.Name, err)
				} else if by := servingNode(nodes, who); by != n.Name {
					t.Errorf("a request from %s was served by the proxy on %s", n.Name, by)
				}
			}
		}
		t.Logf("%d failures in %d requests from A and C", failures, sent)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		if who, err := b.meshGet(ctx, "http://web.shop.mesh/"); err == nil {
			t.Errorf("the client on node B, which has no proxy, was answered by %s through the proxy on %s; want its traffic dropped (internalTrafficPolicy Local)", who.Pod, servingNode(nodes, who))
		}
	}) {
		return
	}

	if !t.Run("node A's proxy restarted under load fails no request once ready", func(t *testing.T) {
		restartUnderLoad(t, nodes, a, cc)
	}) {
		return
	}

	t.Run("a proxy with no table is not Ready and gets no traffic", func(t *testing.T) {
		ctrl.Stop()
		b.proxy.Start(t)
		readyURL := fmt.Sprintf("http://%s/ready", netip.AddrPortFrom(b.proxy.IP, proxyAdminPort))
		var status int
		waitUntil(t, settle, "the new proxy on node B to serve its admin port", func() bool {
			resp, err := plainHTTP.Get(readyURL)
			if err != nil {
				return false
			}
			resp.Body.Close()
			status = resp.StatusCode
			return true
		})
		if status != http.StatusServiceUnavailable {
			t.Errorf("/ready of the proxy without a table: %d, want 503", status)
		}
		before := proxyRequests(t, b.proxy)
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		if who, err := b.meshGet(ctx, "http://web.shop.mesh/"); err == nil {
			t.Errorf("the client on node B was answered by %s through the proxy on %s while B's proxy had no table", who.Pod, servingNode(nodes, who))
		}
		if b.proxy.Ready() {
			t.Fatal("the proxy on node B is Ready without a table")
		}
		waitForEndpoints(t, c, "nodemesh", "web--shop", map[string]endpoint{
			a.proxy.IP.String(): readyOn(a.Name), b.proxy.IP.String(): notReadyOn(b.Name), cc.proxy.IP.String(): readyOn(cc.Name),
		})
		if got := proxyRequests(t, b.proxy); got != before {
			t.Errorf("the proxy without a table counted %v HTTP requests, want none", got-before)
		}
		for _, n := range []*meshNode{a, cc} {
			for range 20 {
				if _, err := n.meshGet(t.Context(), "http://web.shop.mesh/"); err != nil {
					t.Errorf("with the controller away, the client on %s: %v (its proxy should keep its last table)", n.Name, err)
				}
			}
		}

		t.Log("the controller is back: B's proxy gets its table, becomes Ready and serves B's client")
		startFixedController(t, c, port)
		b.proxy.WaitReady(t, time.Minute)
		waitUntil(t, settle, "the client on node B to be served by its proxy", func() bool {
			who, err := b.meshGet(t.Context(), "http://web.shop.mesh/")
			return err == nil && servingNode(nodes, who) == b.Name
		})
	})
}

// restartUnderLoad restarts restarted's proxy in place (as the kubelet
// restarts a container) while the clients on it and on control send steady
// traffic, and counts the failures by when the request started: before the
// restart (open at that instant), between the restart and the new proxy's
// Ready, and after it.
//
// None may fail after Ready, nor on the control node, nor while the proxy
// is down: at SIGTERM the proxy fails /ready but keeps serving for its
// --shutdown-delay (lame duck), so the pod leaves the shadow endpoints
// before its listeners close. A connection started while no local proxy is
// Ready waits (kube-proxy drops its SYN, TCP resends it) and is served once
// the new one is Ready; the slowest such request is reported. Only a
// connection open at the restart may fail, as the issue allows.
func restartUnderLoad(t *testing.T, nodes []*meshNode, restarted, control *meshNode) {
	l := startMeshLoad(t.Context(), nodes, []*meshNode{restarted, control}, 3, 20*time.Millisecond, 4000, 90*time.Second)
	time.Sleep(2 * time.Second) // steady state first
	stopAt := time.Now()
	restarted.proxy.Restart(t)
	d := restarted.proxy.WaitReady(t, settle)
	starts := restarted.proxy.Starts()
	s := starts[len(starts)-1]
	time.Sleep(3 * time.Second) // and after Ready, through kube-proxy's next sync
	out := l.stop()

	type tally struct {
		sent, failed int
		kinds        map[string]int
	}
	open, during, after, ctl := tally{kinds: map[string]int{}}, tally{kinds: map[string]int{}}, tally{kinds: map[string]int{}}, tally{kinds: map[string]int{}}
	var longest time.Duration
	for _, o := range out {
		var k *tally
		switch {
		case o.node == control.Name:
			k = &ctl
		case o.start.Before(stopAt):
			if !o.end.After(stopAt) {
				continue // done before the restart: steady state
			}
			k = &open
		case o.start.Before(s.Ready):
			k = &during
		default:
			k = &after
		}
		k.sent++
		if o.err != nil {
			k.failed++
			kind := failureKind(o.err)
			k.kinds[kind]++
			if k != &during || kind == "other" || k.kinds[kind] == 1 {
				t.Logf("%s request started %s after the restart failed (%s): %v", o.node, o.start.Sub(stopAt).Round(time.Millisecond), kind, o.err)
			}
			continue
		}
		if o.node == restarted.Name {
			longest = max(longest, o.end.Sub(o.start))
		}
		if o.servedBy != o.node || !o.fromClient {
			t.Errorf("a request from %s was served by the proxy on %s (client IP seen: %t)", o.node, o.servedBy, o.fromClient)
		}
	}
	t.Logf("FIGURE restart of the proxy on %s under load (%d requests in all): open at the restart %d/%d failed, started while it was down %d/%d failed %v, started after Ready %d/%d failed; control node %s %d/%d failed",
		restarted.Name, len(out), open.failed, open.sent, during.failed, during.sent, during.kinds, after.failed, after.sent, control.Name, ctl.failed, ctl.sent)
	t.Logf("FIGURE restarted proxy: start to /ready passing %s, to Pod Ready %s; down (SIGTERM to Pod Ready) %s; slowest successful request %s",
		s.Probed.Sub(s.Started).Round(time.Millisecond), d.Round(time.Millisecond), s.Ready.Sub(stopAt).Round(time.Millisecond), longest.Round(time.Millisecond))
	if after.sent == 0 || ctl.sent == 0 {
		t.Fatalf("the load did not run through the restart: %d requests after Ready, %d on the control node", after.sent, ctl.sent)
	}
	if during.failed > 0 {
		t.Errorf("%d of %d requests started while the proxy restarted failed %v; want none (the drain should keep kube-proxy off a closing proxy)", during.failed, during.sent, during.kinds)
	}
	if after.failed > 0 {
		t.Errorf("%d of %d requests started after the restarted proxy was Ready failed; want none", after.failed, after.sent)
	}
	if ctl.failed > 0 {
		t.Errorf("%d of %d requests from the control node %s failed; want none", ctl.failed, ctl.sent, control.Name)
	}
}
