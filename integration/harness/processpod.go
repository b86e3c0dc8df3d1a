package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// processImage names the container of process pods; nothing pulls it.
const processImage = "nodemesh.test/harness-process:latest"

// ProcessPodSpec describes a pod whose container is a program of the test's
// choosing (a `nodemesh proxy`, CoreDNS, ...), for StartProcessPod.
type ProcessPodSpec struct {
	// PodSpec places and labels the pod. Its Ports are only declared on the
	// Pod (for Services' named targetPorts): the process serves them itself,
	// so their Server is empty. nil Ports means none.
	PodSpec
	// Command is the argv of the process; Command[0] is a path. As the
	// kubelet does, $(POD_IP), $(POD_NAME), $(POD_NAMESPACE) and
	// $(NODE_NAME) are expanded in it and in Env.
	Command []string
	// Env is the process's whole environment besides PATH and the four
	// variables above, as NAME=value: like a container, it inherits nothing
	// else from the test binary.
	Env []string
	// Readiness gates the Pod's Ready condition; nil means ready while the
	// process runs.
	Readiness *HTTPProbe
}

// ProcessPod is a pod whose container is a real process of the test's
// choosing, run inside its node's network namespace. A simulated kubelet
// keeps its status: Running once started, Ready while the readiness probe
// passes, not Ready as soon as the process exits (with the container's
// exit code and restart count). The process can be stopped, started again
// and restarted in place; the pod keeps its IP throughout, as a container
// restart does. The kubelet owns the pod's readiness: do not call SetReady.
type ProcessPod struct {
	*Pod
	spec   ProcessPodSpec
	logDir string
}

// StartProcessPod creates the Pod bound to spec.Node, gives it an IP,
// starts its process and returns once the Pod is Running; it becomes Ready
// when its probe passes (see WaitReady). The pod is deleted, and its process
// stopped, when t's test ends. A process that ends without Stop fails the
// test then.
func (c *Cluster) StartProcessPod(t testing.TB, spec ProcessPodSpec) *ProcessPod {
	t.Helper()
	pp, err := c.startProcessPod(t, spec)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return pp
}

func (c *Cluster) startProcessPod(t testing.TB, spec ProcessPodSpec) (*ProcessPod, error) {
	if spec.Namespace == "" {
		spec.Namespace = metav1.NamespaceDefault
	}
	spec.Ports = slices.Clone(spec.Ports)
	spec.Command = slices.Clone(spec.Command)
	key := spec.Namespace + "/" + spec.Name
	if err := validatePodSpec(spec.PodSpec, true); err != nil {
		return nil, fmt.Errorf("pod %s: %w", key, err)
	}
	if len(spec.Command) == 0 {
		return nil, fmt.Errorf("pod %s: ProcessPodSpec.Command is required", key)
	}
	if spec.Readiness != nil {
		probe := *spec.Readiness // the kubelet fills in defaults
		spec.Readiness = &probe
	}
	p, err := c.newPod(spec.PodSpec)
	if err != nil {
		return nil, err
	}
	pp := &ProcessPod{Pod: p, spec: spec, logDir: t.TempDir()}
	pp.kubelet = newPodKubelet(t, p, spec.Readiness)
	if err := pp.create(t); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), podStartTimeout)
		defer cancel()
		return nil, errors.Join(fmt.Errorf("pod %s: %w", key, err), p.delete(ctx))
	}
	t.Cleanup(func() {
		reportProcess(t, p.Process())
		ctx, cancel := context.WithTimeout(context.Background(), podStartTimeout)
		defer cancel()
		if err := p.delete(ctx); err != nil {
			t.Logf("harness: cleaning up pod %s: %v", key, err)
		}
	})
	return pp, nil
}

// create makes the Pod object, starts the process, reports the pod Running
// but not Ready, and hands the status to the kubelet.
func (pp *ProcessPod) create(t testing.TB) error {
	ctx, cancel := context.WithTimeout(t.Context(), podStartTimeout)
	defer cancel()
	c := pp.cluster
	sa := pp.spec.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	err := c.poll(ctx, func(ctx context.Context) (bool, error) {
		_, err := c.client.CoreV1().ServiceAccounts(pp.Namespace).Get(ctx, sa, metav1.GetOptions{})
		return err == nil, ignoreNotFound(err)
	})
	if err != nil {
		return fmt.Errorf("waiting for ServiceAccount %s/%s: %w", pp.Namespace, sa, err)
	}
	obj := podObject(pp.spec.PodSpec, sa)
	ctr := &obj.Spec.Containers[0]
	ctr.Image, ctr.Command, ctr.Env = processImage, pp.expand(pp.spec.Command), nil
	if r := pp.spec.Readiness; r != nil {
		ctr.ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: r.Path, Port: intstr.FromInt32(r.Port)}},
			PeriodSeconds: int32(max(r.Period/time.Second, 1)), FailureThreshold: 1, SuccessThreshold: 1,
		}
	}
	obj, err = c.client.CoreV1().Pods(pp.Namespace).Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	pp.created = true
	if err := pp.startProcess(); err != nil {
		return err
	}
	obj.Status = podStatus(pp.node, pp.IP, metav1.Now())
	setReadiness(&obj.Status, false, metav1.Now())
	for i := range obj.Status.ContainerStatuses {
		obj.Status.ContainerStatuses[i].Image = processImage
	}
	if _, err := c.client.CoreV1().Pods(pp.Namespace).UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("set status Running: %w", err)
	}
	pp.kubelet.run()
	return nil
}

// expand replaces the downward-API variables as the kubelet expands $(VAR).
func (pp *ProcessPod) expand(in []string) []string {
	r := strings.NewReplacer(
		"$(POD_IP)", pp.IP.String(), "$(POD_NAME)", pp.Name,
		"$(POD_NAMESPACE)", pp.Namespace, "$(NODE_NAME)", pp.Node)
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = r.Replace(s)
	}
	return out
}

// startProcess starts the container's process in the node's namespace.
func (pp *ProcessPod) startProcess() error {
	argv := pp.expand(pp.spec.Command)
	env := append([]string{
		"PATH=" + os.Getenv("PATH"),
		"POD_IP=" + pp.IP.String(), "POD_NAME=" + pp.Name,
		"POD_NAMESPACE=" + pp.Namespace, "NODE_NAME=" + pp.Node,
	}, pp.expand(pp.spec.Env)...)
	n := len(pp.kubelet.Starts())
	logPath := filepath.Join(pp.logDir, fmt.Sprintf("%s-%s.%d.log", pp.Namespace, pp.Name, n))
	name := fmt.Sprintf("pod %s/%s (%s)", pp.Namespace, pp.Name, filepath.Base(argv[0]))
	at := time.Now()
	proc, err := startProcessEnvIn(pp.node.netns, name, logPath, argv[0], argv[1:], env)
	if err != nil {
		return err
	}
	// The record first: the kubelet must not see the process without it.
	pp.kubelet.started(at)
	pp.setProcess(proc)
	pp.kubelet.poke()
	return nil
}

// Stop ends the process as the kubelet stops a container (SIGTERM, then
// SIGKILL after a grace period) and returns once the Pod's Ready condition
// is False. The Pod stays, Running with its container terminated, until
// Start or Delete.
func (pp *ProcessPod) Stop(t testing.TB) {
	t.Helper()
	if proc := pp.Process(); proc != nil {
		proc.Stop()
	}
	pp.kubelet.poke()
	ctx, cancel := context.WithTimeout(t.Context(), podStartTimeout)
	defer cancel()
	if err := pp.kubelet.waitReady(ctx, false); err != nil {
		t.Fatalf("harness: stop %v", err)
	}
}

// Start starts the process again after Stop (or after it exited); the pod
// keeps its IP. It returns at once: the pod becomes Ready when its probe
// passes (WaitReady).
func (pp *ProcessPod) Start(t testing.TB) {
	t.Helper()
	if proc := pp.Process(); proc != nil && !proc.Exited() {
		t.Fatalf("harness: pod %s: start: its process is still running; Stop it first", pp.Key())
	}
	if err := pp.startProcess(); err != nil {
		t.Fatalf("harness: pod %s: start: %v", pp.Key(), err)
	}
}

// Restart is Stop then Start: a container restart in place.
func (pp *ProcessPod) Restart(t testing.TB) {
	t.Helper()
	pp.Stop(t)
	pp.Start(t)
}

// WaitReady waits until the Pod's Ready condition is True and returns how
// long the current process took from its start to that write.
func (pp *ProcessPod) WaitReady(t testing.TB, timeout time.Duration) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	if err := pp.kubelet.waitReady(ctx, true); err != nil {
		if proc := pp.Process(); proc != nil {
			t.Logf("last lines of %s (%s):\n%s", proc.Name, proc.LogPath, proc.Tail(20))
		}
		t.Fatalf("harness: %v", err)
	}
	s := pp.kubelet.Starts()
	last := s[len(s)-1]
	return last.Ready.Sub(last.Started)
}

// Ready reports the Pod's Ready condition as the kubelet last wrote it.
func (pp *ProcessPod) Ready() bool { return pp.kubelet.isReady() }

// Starts lists every start of the pod's process, oldest first.
func (pp *ProcessPod) Starts() []StartRecord { return pp.kubelet.Starts() }
