package harness

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// nodeSeq numbers the nodes of this process, for their InternalIPs.
var nodeSeq atomic.Int32

// Node is a simulated Kubernetes node: a Ready Node object with no kubelet
// behind it. By default its InternalIP and its pods live in the harness
// namespace with everything else. In a cluster started WithNodeNetworks it
// has its own network namespace: the InternalIP on eth0, bridged to the other
// nodes, its pods on that namespace's lo, routes to every other node's pod
// CIDR, and its processes (pods, kube-proxy) running inside it.
//
// The Node stays Ready because DefaultControllers leaves out the
// node-lifecycle controller, which would otherwise wait for heartbeats.
type Node struct {
	// Name is the Node object's name.
	Name string
	// Index is the node's number in its cluster, from 1.
	Index int
	// IP is the node's InternalIP (10.240.0.K): on lo of the harness
	// namespace, or on eth0 of the node's own.
	IP netip.Addr
	// PodCIDR is 10.244.<Index>.0/24, where its pods get their IPs.
	PodCIDR netip.Prefix

	cluster *Cluster
	netns   *netNS // nil: the harness namespace
	veth    string // its end of the veth pair in the harness namespace
}

// AddNode creates a Ready Node with an InternalIP and a pod CIDR. Node names
// must be unique in the cluster. The Node is deleted when t's test ends.
func (c *Cluster) AddNode(t testing.TB, name string) *Node {
	t.Helper()
	c.mu.Lock()
	if _, dup := c.nodes[name]; dup {
		c.mu.Unlock()
		t.Fatalf("harness: node %q already exists", name)
	}
	c.nodeCount++
	n := &Node{Name: name, Index: c.nodeCount, cluster: c}
	c.nodes[name] = n
	c.mu.Unlock()
	if n.Index > 254 {
		t.Fatalf("harness: more than 254 nodes in one cluster")
	}
	n.PodCIDR = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(n.Index), 0}), 24)
	k := nodeSeq.Add(1)
	n.IP = netip.AddrFrom4([4]byte{10, 240, byte(k >> 8), byte(k)})
	var err error
	t.Cleanup(func() { n.remove(t) })
	if c.network != nil {
		err = c.network.attach(t, n)
	} else {
		err = claimAddr(n.IP, "node "+name)
	}
	if err != nil {
		t.Fatalf("harness: add node %q: %v", name, err)
	}

	ctx := t.Context()
	obj := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				corev1.LabelHostname: name,
				corev1.LabelOSStable: "linux",
			},
		},
		Spec: corev1.NodeSpec{PodCIDR: n.PodCIDR.String(), PodCIDRs: []string{n.PodCIDR.String()}},
	}
	created, err := c.client.CoreV1().Nodes().Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("harness: create node %q: %v", name, err)
	}
	now := metav1.Now()
	created.Status = corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue,
			Reason: "HarnessReady", Message: "simulated by the nodemesh test harness",
			LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: n.IP.String()},
			{Type: corev1.NodeHostName, Address: name},
		},
		NodeInfo: corev1.NodeSystemInfo{OperatingSystem: "linux", Architecture: runtime.GOARCH, KubeletVersion: "harness"},
	}
	if _, err := c.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("harness: set node %q Ready: %v", name, err)
	}
	return n
}

// remove deletes the Node object and frees its name and IP.
func (n *Node) remove(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), podStartTimeout)
	defer cancel()
	err := n.cluster.client.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{})
	var netErr error
	if n.cluster.network != nil {
		netErr = n.cluster.network.detach(n)
	} else {
		netErr = releaseAddr(n.IP)
	}
	if err := errors.Join(ignoreNotFound(err), netErr); err != nil {
		t.Logf("harness: cleaning up node %s: %v", n.Name, err)
	}
	n.cluster.mu.Lock()
	delete(n.cluster.nodes, n.Name)
	n.cluster.mu.Unlock()
}

// node looks up a node added with AddNode.
func (c *Cluster) node(name string) (*Node, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.nodes[name]
	if !ok {
		return nil, fmt.Errorf("unknown node %q: add it with Cluster.AddNode first", name)
	}
	return n, nil
}

// HasOwnNetwork reports whether the node has its own network namespace
// (the cluster was started WithNodeNetworks).
func (n *Node) HasOwnNetwork() bool { return n.netns != nil }

// Do runs fn on an OS thread inside the node's network namespace (for a node
// without one, in the harness namespace, as is). Sockets fn opens stay in
// that namespace, and processes it starts run there. fn runs on another
// goroutine, so it must return errors rather than call t.Fatal, and it must
// not resolve names: Go's resolver queries from goroutines of its own, in
// the harness namespace.
func (n *Node) Do(fn func() error) error { return n.netns.do(fn) }

// Node returns the node added with AddNode under name, or nil.
func (c *Cluster) Node(name string) *Node {
	n, _ := c.node(name)
	return n
}
