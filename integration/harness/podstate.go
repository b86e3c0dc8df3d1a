package harness

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
)

// containerName and image describe the one container of every harness pod.
// Nothing pulls the image; it only names what runs.
const (
	containerName = "server"
	image         = "nodemesh.test/harness-pod:latest"
)

// podObject is the Pod a harness pod is created as, bound to its node so
// that no scheduler is needed.
func podObject(spec PodSpec, serviceAccount string) *corev1.Pod {
	ports := make([]corev1.ContainerPort, 0, len(spec.Ports))
	for _, p := range spec.Ports {
		ports = append(ports, corev1.ContainerPort{Name: p.Name, ContainerPort: p.Port, Protocol: p.protocol()})
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: spec.Namespace, Name: spec.Name, Labels: spec.Labels},
		Spec: corev1.PodSpec{
			NodeName:           spec.Node,
			ServiceAccountName: serviceAccount,
			Containers:         []corev1.Container{{Name: containerName, Image: image, Ports: ports}},
		},
	}
}

// podStatus is the status a kubelet would report for a started, ready pod.
func podStatus(node *Node, ip netip.Addr, started metav1.Time) corev1.PodStatus {
	status := corev1.PodStatus{
		Phase:     corev1.PodRunning,
		HostIP:    node.IP.String(),
		HostIPs:   []corev1.HostIP{{IP: node.IP.String()}},
		PodIP:     ip.String(),
		PodIPs:    []corev1.PodIP{{IP: ip.String()}},
		StartTime: &started,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name:    containerName,
			Image:   image,
			Started: new(true),
			State:   corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
		}},
	}
	for _, typ := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodReadyToStartContainers, corev1.PodInitialized} {
		status.Conditions = append(status.Conditions, corev1.PodCondition{Type: typ, Status: corev1.ConditionTrue, LastTransitionTime: started})
	}
	setReadiness(&status, true, started)
	return status
}

// setReadiness sets the ContainersReady and Ready conditions and the
// container's ready flag, as a kubelet's readiness probe would.
func setReadiness(status *corev1.PodStatus, ready bool, now metav1.Time) {
	value := corev1.ConditionFalse
	if ready {
		value = corev1.ConditionTrue
	}
	for _, typ := range []corev1.PodConditionType{corev1.ContainersReady, corev1.PodReady} {
		cond := corev1.PodCondition{Type: typ, Status: value, LastTransitionTime: now}
		if !ready {
			cond.Reason = "HarnessNotReady"
		}
		replaced := false
		for i := range status.Conditions {
			if status.Conditions[i].Type == typ {
				if status.Conditions[i].Status == value {
					cond.LastTransitionTime = status.Conditions[i].LastTransitionTime
				}
				status.Conditions[i], replaced = cond, true
			}
		}
		if !replaced {
			status.Conditions = append(status.Conditions, cond)
		}
	}
	for i := range status.ContainerStatuses {
		status.ContainerStatuses[i].Ready = ready
	}
}

// Key is the pod's namespace and name.
func (p *Pod) Key() types.NamespacedName {
	return types.NamespacedName{Namespace: p.Namespace, Name: p.Name}
}

// AddrPort is the pod IP with the number of the named port. It panics if the
// pod has no such port: that is a mistake in the test.
func (p *Pod) AddrPort(portName string) netip.AddrPort {
	for _, port := range p.Ports {
		if port.Name == portName {
			return netip.AddrPortFrom(p.IP, uint16(port.Port))
		}
	}
	panic(fmt.Sprintf("harness: pod %s has no port named %q", p.Key(), portName))
}

// Process is the pod's process (a process pod's current one).
func (p *Pod) Process() *Process {
	p.procMu.Lock()
	defer p.procMu.Unlock()
	return p.proc
}

// SetReady flips the pod's readiness, as a failing or recovering readiness
// probe would. The process keeps running either way.
func (p *Pod) SetReady(t testing.TB, ready bool) {
	t.Helper()
	pods := p.cluster.client.CoreV1().Pods(p.Namespace)
	ctx := t.Context()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj, err := pods.Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		setReadiness(&obj.Status, ready, metav1.Now())
		_, err = pods.UpdateStatus(ctx, obj, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("harness: set pod %s ready=%t: %v", p.Key(), ready, err)
	}
}

// Delete deletes the Pod object at once, stops its process (so its ports
// refuse connections) and frees its IP for another pod.
func (p *Pod) Delete(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), podStartTimeout)
	defer cancel()
	if err := p.delete(ctx); err != nil {
		t.Fatalf("harness: delete pod %s: %v", p.Key(), err)
	}
}
