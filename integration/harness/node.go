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
// behind it. Its pods and its InternalIP live in the test binary's network
// namespace today; the multi-node work will give each Node its own namespace.
//
// The Node stays Ready because DefaultControllers leaves out the
// node-lifecycle controller, which would otherwise wait for heartbeats.
type Node struct {
	// Name is the Node object's name.
	Name string
	// Index is the node's number in its cluster, from 1.
	Index int
	// IP is the node's InternalIP (10.240.0.K), on lo.
	IP netip.Addr
	// PodCIDR is 10.244.<Index>.0/24, where its pods get their IPs.
	PodCIDR netip.Prefix

	cluster *Cluster
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
	if err := claimAddr(n.IP, "node "+name); err != nil {
		t.Fatalf("harness: add node %q: %v", name, err)
	}
	t.Cleanup(func() { n.remove(t) })

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
	if err := errors.Join(ignoreNotFound(err), releaseAddr(n.IP)); err != nil {
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
