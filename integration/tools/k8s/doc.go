// Package tools pins the Kubernetes control-plane binaries that the
// integration harness runs. The mains under cmd/ are copied unchanged from
// k8s.io/kubernetes v1.37.2 (Apache-2.0); only the module around them is ours.
package tools
