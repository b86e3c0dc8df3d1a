// Package harness runs a real Kubernetes control plane and simulated workloads
// for nodemesh's integration tests and demo.
//
// Everything runs inside one private network namespace that the harness makes
// for the test binary (see Main), so no packet can leave the machine:
//
//   - etcd, kube-apiserver and kube-controller-manager are the real binaries
//     from NODEMESH_TOOLS_DIR (built by integration/tools/build.sh), started as
//     child processes by Start;
//   - Nodes are Node objects (AddNode); there is no kubelet;
//   - Pods are real processes (StartPod): the harness creates the Pod bound to
//     its node, puts its IP on lo, starts a child process serving HTTP whoami,
//     TCP echo and UDP echo on that IP, and then reports the Pod Running and
//     Ready through the status subresource so that the real EndpointSlice
//     controller publishes it. A pod process is the test binary itself,
//     re-executed by Main in pod mode.
//   - Process pods (StartProcessPod) run a program of the test's choosing
//     (a `nodemesh proxy`, CoreDNS) as a pod's container; a simulated kubelet
//     gates the Pod's Ready condition on an HTTP readiness probe and follows
//     the process through Stop, Start and Restart.
//   - StartKubeProxy runs the real kube-proxy (nftables mode) for a node, so
//     ClusterIPs work.
//
// With WithNodeNetworks every node has its own network namespace, made inside
// the harness namespace and joined to the others by a bridge (see
// nodeNetwork); its pods, its kube-proxy and its process pods run in it, and
// Pod.DialContext sends from a pod's own IP in its node's namespace.
//
// Address plan (all on lo of the harness namespace unless said otherwise):
//
//	127.0.C.1       etcd of cluster C (C counts clusters in this process)
//	10.239.0.C      kube-apiserver of cluster C (also its advertise address)
//	10.240.0.K      the InternalIP of the K-th node made in this process
//	                (10.240.1.0 follows 10.240.0.255); with node networks on
//	                eth0/16 of the node's namespace
//	10.240.255.C    with node networks, the harness namespace's address on
//	                cluster C's bridge: the nodes' default gateway
//	10.244.N.M/32   pods on node N (1-based per cluster) of a cluster, on lo
//	                of the node's namespace when it has one
//	10.96.0.0/16    the Service cluster IP range (virtual, never on lo)
//
// The apiserver does not listen on loopback because Endpoint and EndpointSlice
// validation rejects 127.0.0.0/8, which would break the "kubernetes" Service.
package harness
