package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// Probe defaults. The kubelet's default period is 10s; tests cannot wait
// that long, and a short period makes the Ready condition follow the process
// closely, which is what the tests measure.
const (
	DefaultProbePeriod  = 100 * time.Millisecond
	DefaultProbeTimeout = time.Second
)

// HTTPProbe is a readiness probe, run as the kubelet runs an httpGet probe:
// GET http://<pod IP>:<Port><Path> from the pod's node, a new connection
// each time; a status from 200 to 399 passes. One failure makes the pod not
// ready and one success ready again (failureThreshold = successThreshold = 1).
type HTTPProbe struct {
	// Port and Path say what to GET on the pod IP.
	Port int32
	Path string
	// Period between probes; zero means DefaultProbePeriod.
	Period time.Duration
	// Timeout of one probe; zero means DefaultProbeTimeout.
	Timeout time.Duration
}

// StartRecord is one start of a process pod's process.
type StartRecord struct {
	// Started is when the process was started.
	Started time.Time
	// Probed is when its readiness probe first passed (zero until then).
	Probed time.Time
	// Ready is when the Pod's Ready condition was written True for it
	// (zero until then).
	Ready time.Time
}

// podKubelet does a kubelet's status work for a process pod: it probes the
// current process and writes the Pod's Ready condition and container state
// whenever they change. It is the only writer of the pod's status once the
// pod is running, so writes never race.
type podKubelet struct {
	t      testing.TB
	pod    *Pod
	probe  *HTTPProbe
	client *http.Client
	nudge  chan struct{}
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	ready    bool     // as last written
	written  *Process // the process the last write described
	starts   []StartRecord
	stopOnce sync.Once
}

// newPodKubelet makes the status writer of p; run starts it.
func newPodKubelet(t testing.TB, p *Pod, probe *HTTPProbe) *podKubelet {
	k := &podKubelet{t: t, pod: p, probe: probe, nudge: make(chan struct{}, 1), done: make(chan struct{})}
	if probe != nil {
		if probe.Period == 0 {
			probe.Period = DefaultProbePeriod
		}
		if probe.Timeout == 0 {
			probe.Timeout = DefaultProbeTimeout
		}
		k.client = p.node.HTTPClient(probe.Timeout) // the kubelet probes from the node
	}
	return k
}

// started records the start of a new process; call it before setProcess.
func (k *podKubelet) started(at time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.starts = append(k.starts, StartRecord{Started: at})
}

// poke makes the loop look again at once.
func (k *podKubelet) poke() {
	select {
	case k.nudge <- struct{}{}:
	default:
	}
}

// run probes and writes status until stop.
func (k *podKubelet) run() {
	ctx, cancel := context.WithCancel(context.Background())
	k.cancel = cancel
	go func() {
		defer close(k.done)
		for {
			proc := k.pod.Process()
			alive := proc != nil && !proc.Exited()
			passed := alive && k.probeOnce(ctx)
			if proc != k.pod.Process() || (alive && proc.Exited()) {
				continue // the process changed while probing: look again
			}
			k.record(ctx, proc, passed)
			var exited <-chan struct{}
			if alive {
				exited = proc.Done()
			}
			period := DefaultProbePeriod
			if k.probe != nil {
				period = k.probe.Period
			}
			select {
			case <-ctx.Done():
				return
			case <-k.nudge:
			case <-exited: // the kubelet learns of a container's exit at once
			case <-time.After(period):
			}
		}
	}()
}

// probeOnce runs the probe; a pod without one is ready while its process
// runs.
func (k *podKubelet) probeOnce(ctx context.Context) bool {
	if k.probe == nil {
		return true
	}
	url := "http://" + net.JoinHostPort(k.pod.IP.String(), strconv.Itoa(int(k.probe.Port))) + k.probe.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

// record notes a passing probe and writes the status when readiness or the
// process changed.
func (k *podKubelet) record(ctx context.Context, proc *Process, ready bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := time.Now()
	last := len(k.starts) - 1
	if ready && last >= 0 && k.starts[last].Probed.IsZero() {
		k.starts[last].Probed = now
	}
	if ready == k.ready && proc == k.written {
		return
	}
	err := k.write(ctx, proc, ready, len(k.starts)-1)
	switch {
	case err == nil:
		k.ready, k.written = ready, proc
		if ready && last >= 0 && k.starts[last].Ready.IsZero() {
			k.starts[last].Ready = time.Now()
		}
	case ctx.Err() == nil && !apierrors.IsNotFound(err):
		k.t.Logf("harness: pod %s: write status ready=%t: %v (retrying)", k.pod.Key(), ready, err)
	}
}

// write sets the Ready conditions and the container's state.
func (k *podKubelet) write(ctx context.Context, proc *Process, ready bool, restarts int) error {
	pods := k.pod.cluster.client.CoreV1().Pods(k.pod.Namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj, err := pods.Get(ctx, k.pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		setReadiness(&obj.Status, ready, now)
		for i := range obj.Status.ContainerStatuses {
			cs := &obj.Status.ContainerStatuses[i]
			cs.RestartCount = int32(max(restarts, 0))
			cs.Started = new(proc != nil && !proc.Exited())
			switch {
			case proc == nil:
			case proc.Exited():
				code, reason := int32(0), "Completed"
				var exit interface{ ExitCode() int }
				if errors.As(proc.Err(), &exit) {
					code, reason = int32(exit.ExitCode()), "Error"
				}
				cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, FinishedAt: now}}
			default:
				cs.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}
			}
		}
		_, err = pods.UpdateStatus(ctx, obj, metav1.UpdateOptions{})
		return err
	})
}

// Starts is a copy of the start records.
func (k *podKubelet) Starts() []StartRecord {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.starts)
}

// isReady is the Ready condition as last written.
func (k *podKubelet) isReady() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.ready
}

// waitReady waits until the written Ready condition is want.
func (k *podKubelet) waitReady(ctx context.Context, want bool) error {
	for k.isReady() != want {
		select {
		case <-ctx.Done():
			return fmt.Errorf("pod %s: Ready condition still %t: %w", k.pod.Key(), !want, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// stop ends the loop and waits for it.
func (k *podKubelet) stop() {
	k.stopOnce.Do(func() {
		if k.cancel != nil {
			k.cancel()
			<-k.done
		}
	})
}
