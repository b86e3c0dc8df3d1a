package harness

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
)

// NodeCIDR is the network of the InternalIPs of nodes that have their own
// network namespace (WithNodeNetworks): each node's eth0 has its IP in it, so
// the nodes reach each other directly over the cluster's bridge.
const NodeCIDR = "10.240.0.0/16"

// nodeNetwork joins the node namespaces of one cluster: a bridge in the
// harness namespace, with a gateway address, to which each node's eth0 is
// attached through a veth pair.
//
//	harness namespace: control plane on lo, bridge nmbr<C> with 10.240.255.C/32,
//	                   a /32 route to each node IP and a route to each pod CIDR
//	node namespace:    eth0 with the node IP/16, default route via 10.240.255.C,
//	                   10.244.M.0/24 via node M's IP for every other node M,
//	                   its pods' IPs on lo
//
// Nothing forwards between namespaces except the bridge: a node reaches
// another node's pods directly, and the harness namespace (the control
// plane, the controller, the test's own sockets) through the gateway. The
// harness namespace has no route out, so neither does anything else.
type nodeNetwork struct {
	bridge  string
	gateway netip.Addr

	mu    sync.Mutex
	nodes []*Node // attached, in the order added
}

// WithNodeNetworks gives every node of the cluster its own network namespace,
// joined to the others by a bridge; see Node. Pods then run inside their
// node's namespace, and StartKubeProxy runs one kube-proxy per node.
//
// Pod CIDRs are numbered per cluster, so two clusters with node networks
// cannot run at the same time in one test binary: the second one's routes
// clash, and AddNode says so.
func WithNodeNetworks() Option {
	return func(o *options) { o.nodeNetworks = true }
}

// setUpNodeNetwork makes the cluster's bridge; it is removed when t ends.
func (c *Cluster) setUpNodeNetwork(t testing.TB, n int32) error {
	nw := &nodeNetwork{
		bridge:  fmt.Sprintf("nmbr%d", n),
		gateway: netip.AddrFrom4([4]byte{10, 240, 255, byte(n)}),
	}
	if err := ipCommand("link", "add", nw.bridge, "type", "bridge"); err != nil {
		return err
	}
	t.Cleanup(func() {
		if err := ipCommand("link", "del", nw.bridge); err != nil {
			t.Logf("harness: %v", err)
		}
	})
	if err := ipCommand("link", "set", nw.bridge, "up"); err != nil {
		return err
	}
	if err := claimAddrOn(nil, nw.bridge, 32, nw.gateway, "the node network gateway of cluster "+fmt.Sprint(n)); err != nil {
		return err
	}
	t.Cleanup(func() { _ = releaseAddr(nw.gateway) })
	c.network = nw
	return nil
}

// GatewayIP is the address of the harness namespace on the node network:
// what a node (or a pod on it) reaches the harness namespace by, e.g. a
// controller the test runs in its own process. It is the zero Addr when the
// cluster has no node networks; then everything shares one namespace and
// any harness address will do.
func (c *Cluster) GatewayIP() netip.Addr {
	if c.network == nil {
		return netip.Addr{}
	}
	return c.network.gateway
}

// attach gives node n its namespace, its eth0 on the bridge and the routes
// to and from the other nodes.
func (nw *nodeNetwork) attach(t testing.TB, n *Node) error {
	ns, err := newNetNS("node "+n.Name, t.TempDir())
	if err != nil {
		return err
	}
	n.netns = ns
	veth := fmt.Sprintf("%sv%d", nw.bridge, n.Index) // at most 13 characters
	if err := ipCommand("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", fmt.Sprint(ns.holderPid())); err != nil {
		return err
	}
	n.veth = veth
	if err := ipCommand("link", "set", n.veth, "master", nw.bridge, "up"); err != nil {
		return err
	}
	if err := claimAddrOn(ns, "eth0", 16, n.IP, "node "+n.Name); err != nil {
		return err
	}
	steps := [][]string{
		{"link", "set", "eth0", "up"},
		{"route", "add", "default", "via", nw.gateway.String(), "dev", "eth0"},
	}
	for _, s := range steps {
		if err := ns.ip(s...); err != nil {
			return err
		}
	}
	if err := ipCommand("route", "add", n.IP.String()+"/32", "dev", nw.bridge, "src", nw.gateway.String()); err != nil {
		return err
	}
	if err := ipCommand("route", "add", n.PodCIDR.String(), "via", n.IP.String(), "dev", nw.bridge); err != nil {
		return fmt.Errorf("route to the pods of node %s: %w (does another cluster with node networks run now?)", n.Name, err)
	}
	nw.mu.Lock()
	defer nw.mu.Unlock()
	for _, other := range nw.nodes {
		err := errors.Join(
			ns.ip("route", "add", other.PodCIDR.String(), "via", other.IP.String(), "dev", "eth0"),
			other.netns.ip("route", "add", n.PodCIDR.String(), "via", n.IP.String(), "dev", "eth0"))
		if err != nil {
			return err
		}
	}
	nw.nodes = append(nw.nodes, n)
	return nil
}

// detach undoes attach as far as it got; the namespace goes once the last
// process in it has ended.
func (nw *nodeNetwork) detach(n *Node) error {
	if n.netns == nil {
		return nil
	}
	var errs []error
	nw.mu.Lock()
	if i := slices.Index(nw.nodes, n); i >= 0 {
		nw.nodes = slices.Delete(nw.nodes, i, i+1)
		for _, other := range nw.nodes {
			errs = append(errs, other.netns.ip("route", "del", n.PodCIDR.String(), "via", n.IP.String(), "dev", "eth0"))
		}
		errs = append(errs, ipCommand("route", "del", n.PodCIDR.String(), "via", n.IP.String(), "dev", nw.bridge))
	} else {
		// attach stopped half way; the route may or may not be there.
		_ = ipCommand("route", "del", n.PodCIDR.String(), "via", n.IP.String(), "dev", nw.bridge)
	}
	nw.mu.Unlock()
	_ = releaseAddr(n.IP) // goes with the namespace
	if n.veth != "" {
		// Deleting one end of a veth pair deletes both, and the /32 route.
		errs = append(errs, ipCommand("link", "del", n.veth))
	}
	n.netns.close()
	return errors.Join(errs...)
}
