package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
)

// podStartTimeout bounds each step of StartPod that waits on something.
const podStartTimeout = 30 * time.Second

// Server is a built-in test server that a pod runs on one of its ports.
type Server string

// The built-in servers.
const (
	// ServerWhoAmI answers HTTP requests with a JSON WhoAmI; /status/<code>
	// answers with that code and ?delay=<duration> waits before answering.
	ServerWhoAmI Server = "whoami"
	// ServerTCPEcho writes back every byte it reads on a TCP connection.
	ServerTCPEcho Server = "tcp-echo"
	// ServerUDPEcho sends every datagram back to its sender.
	ServerUDPEcho Server = "udp-echo"
)

// Protocol is the container port protocol the server uses.
func (s Server) Protocol() corev1.Protocol {
	if s == ServerUDPEcho {
		return corev1.ProtocolUDP
	}
	return corev1.ProtocolTCP
}

// Port is a container port of a pod and the server behind it.
type Port struct {
	// Name is the container port's name, for Services' named targetPorts.
	// Empty leaves the port unnamed.
	Name string
	// Port is the number the server listens on at the pod IP.
	Port int32
	// Server is what answers on the port. A process pod (StartProcessPod)
	// serves its ports itself and leaves Server empty.
	Server Server
	// Protocol is the protocol of a process pod's port; empty means TCP.
	// Pods with a built-in Server take its protocol and leave this empty.
	Protocol corev1.Protocol
}

// protocol is the port's protocol, from its server or its Protocol field.
func (p Port) protocol() corev1.Protocol {
	switch {
	case p.Server != "":
		return p.Server.Protocol()
	case p.Protocol != "":
		return p.Protocol
	}
	return corev1.ProtocolTCP
}

// DefaultPorts are the ports of a pod whose PodSpec lists none.
var DefaultPorts = []Port{
	{Name: "http", Port: 80, Server: ServerWhoAmI},
	{Name: "tcp-echo", Port: 7, Server: ServerTCPEcho},
	{Name: "udp-echo", Port: 7, Server: ServerUDPEcho},
}

// PodSpec describes a pod for StartPod.
type PodSpec struct {
	// Namespace of the Pod; empty means "default".
	Namespace string
	// Name of the Pod; required.
	Name string
	// Node is the name of a node added with AddNode; required.
	Node string
	// Labels of the Pod, for Service selectors.
	Labels map[string]string
	// ServiceAccount the Pod runs as; empty means the namespace's default.
	// StartPod waits for it to exist, as the ServiceAccount admission plugin
	// rejects pods whose account is missing.
	ServiceAccount string
	// IP is the pod IP; the zero value means the next free address in the
	// node's pod CIDR.
	IP netip.Addr
	// Ports the pod serves; nil means DefaultPorts.
	Ports []Port
}

// Pod is a running pod: a Pod object bound to a node, Running with its IP,
// and a real process serving its ports on that IP.
type Pod struct {
	// Namespace and Name identify the Pod object.
	Namespace, Name string
	// Node is the name of the node the pod is bound to.
	Node string
	// IP is the pod IP, on lo of its node's network namespace.
	IP netip.Addr
	// Ports are the ports the pod serves.
	Ports []Port

	cluster    *Cluster
	node       *Node
	created    bool // the Pod object is ours to delete
	procMu     sync.Mutex
	proc       *Process    // the current process; a process pod's changes on restart
	kubelet    *podKubelet // a process pod's status writer; nil for built-in pods
	deleteOnce sync.Once
	deleteErr  error
}

// podConfig is what a pod process is told, as JSON in its environment.
type podConfig struct {
	Namespace string     `json:"namespace"`
	Name      string     `json:"name"`
	Node      string     `json:"node"`
	IP        netip.Addr `json:"ip"`
	Ports     []Port     `json:"ports"`
}

// StartPod starts a pod as TryStartPod does, and fails the test on error.
func (c *Cluster) StartPod(t testing.TB, spec PodSpec) *Pod {
	t.Helper()
	p, err := c.TryStartPod(t, spec)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return p
}

// TryStartPod creates the Pod bound to spec.Node, gives it an IP on lo,
// starts its process, waits until every port listens, and then marks it
// Running and Ready. Bad use (an unknown node, a port declared twice, an IP
// another pod or node holds) returns an error that says so, and leaves
// nothing behind. The pod is deleted when t's test ends.
func (c *Cluster) TryStartPod(t testing.TB, spec PodSpec) (*Pod, error) {
	t.Helper()
	if spec.Namespace == "" {
		spec.Namespace = metav1.NamespaceDefault
	}
	if spec.Ports == nil {
		spec.Ports = DefaultPorts
	}
	spec.Ports = slices.Clone(spec.Ports) // the Pod keeps them; callers may reuse theirs
	key := types.NamespacedName{Namespace: spec.Namespace, Name: spec.Name}
	if err := validatePodSpec(spec, false); err != nil {
		return nil, fmt.Errorf("pod %s: %w", key, err)
	}
	p, err := c.newPod(spec)
	if err != nil {
		return nil, err
	}
	if err := p.start(t, spec, p.node); err != nil {
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
	return p, nil
}

// newPod claims the pod's IP, free or spec.IP, on lo of its node's
// namespace.
func (c *Cluster) newPod(spec PodSpec) (*Pod, error) {
	key := types.NamespacedName{Namespace: spec.Namespace, Name: spec.Name}
	node, err := c.node(spec.Node)
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", key, err)
	}
	owner := "pod " + key.String()
	ip := spec.IP
	if ip.IsValid() {
		err = claimAddrOn(node.netns, "lo", 32, ip, owner)
	} else {
		ip, err = claimFree(node.netns, owner, hostsIn(node.PodCIDR, 2))
	}
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", key, err)
	}
	return &Pod{Namespace: spec.Namespace, Name: spec.Name, Node: node.Name, IP: ip, Ports: spec.Ports, cluster: c, node: node}, nil
}

// validatePodSpec catches what the apiserver would not, or would catch only
// after the pod's address was set up. A process pod's ports have no
// built-in server.
func validatePodSpec(spec PodSpec, process bool) error {
	if spec.Name == "" {
		return errors.New("PodSpec.Name is required")
	}
	if spec.Node == "" {
		return errors.New("PodSpec.Node is required")
	}
	type portKey struct {
		port     int32
		protocol corev1.Protocol
	}
	seenPort := map[portKey]string{}
	seenName := map[string]bool{}
	for _, port := range spec.Ports {
		switch {
		case process && port.Server != "":
			return fmt.Errorf("port %d: a process pod serves its ports itself; leave Server (%q) empty", port.Port, port.Server)
		case process && port.Protocol != "" && port.Protocol != corev1.ProtocolTCP && port.Protocol != corev1.ProtocolUDP:
			return fmt.Errorf("port %d: protocol %q, want TCP or UDP", port.Port, port.Protocol)
		case process:
		case port.Protocol != "":
			return fmt.Errorf("port %d: protocol comes from the server %q; leave Protocol empty", port.Port, port.Server)
		case port.Server != ServerWhoAmI && port.Server != ServerTCPEcho && port.Server != ServerUDPEcho:
			return fmt.Errorf("port %d: unknown server %q", port.Port, port.Server)
		}
		if port.Port < 1 || port.Port > 65535 {
			return fmt.Errorf("port %q: number %d is outside 1-65535", port.Name, port.Port)
		}
		k := portKey{port.Port, port.protocol()}
		if other, dup := seenPort[k]; dup {
			return fmt.Errorf("port clash: %s port %d is declared twice (as %q and %q)", k.protocol, k.port, other, port.Name)
		}
		seenPort[k] = port.Name
		if port.Name != "" {
			if errs := validation.IsValidPortName(port.Name); len(errs) > 0 {
				return fmt.Errorf("port name %q: %v", port.Name, errs)
			}
			if seenName[port.Name] {
				return fmt.Errorf("port name %q is used twice", port.Name)
			}
			seenName[port.Name] = true
		}
	}
	return nil
}

// start creates the Pod object, runs its process and reports it Ready.
func (p *Pod) start(t testing.TB, spec PodSpec, node *Node) error {
	ctx, cancel := context.WithTimeout(t.Context(), podStartTimeout)
	defer cancel()
	c := p.cluster
	sa := spec.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	err := c.poll(ctx, func(ctx context.Context) (bool, error) {
		_, err := c.client.CoreV1().ServiceAccounts(p.Namespace).Get(ctx, sa, metav1.GetOptions{})
		return err == nil, ignoreNotFound(err)
	})
	if err != nil {
		return fmt.Errorf("waiting for ServiceAccount %s/%s: %w", p.Namespace, sa, err)
	}
	obj, err := c.client.CoreV1().Pods(p.Namespace).Create(ctx, podObject(spec, sa), metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	p.created = true
	if err := p.runProcess(ctx, t.TempDir()); err != nil {
		return err
	}
	obj.Status = podStatus(node, p.IP, metav1.Now())
	if _, err := c.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("set status Running: %w", err)
	}
	return nil
}

// runProcess starts the pod's process and waits until it listens on every
// port. The process writes one line to fd 3: "ok", or why it failed.
func (p *Pod) runProcess(ctx context.Context, logDir string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cfg, err := json.Marshal(podConfig{Namespace: p.Namespace, Name: p.Name, Node: p.Node, IP: p.IP, Ports: p.Ports})
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	logPath := filepath.Join(logDir, fmt.Sprintf("pod-%s-%s.log", p.Namespace, p.Name))
	proc, err := startProcessIn(p.node.netns, "pod "+p.Namespace+"/"+p.Name, logPath, exe, nil, []string{envPod + "=" + string(cfg)}, w)
	w.Close() // the child holds its own copy; EOF then means it exited
	if err != nil {
		return err
	}
	p.setProcess(proc)
	line := make(chan string, 1)
	go func() {
		buf := make([]byte, 4096)
		n, _ := r.Read(buf)
		line <- string(buf[:n])
	}()
	select {
	case msg := <-line:
		if msg == "ok\n" {
			return nil
		}
		if msg == "" {
			return proc.exitError()
		}
		return fmt.Errorf("process: %s", msg[:len(msg)-1])
	case <-ctx.Done():
		return fmt.Errorf("waiting for the process to listen: %w", ctx.Err())
	}
}

// delete removes the Pod object at once (as a kubelet would after its
// containers stopped), stops the process and frees the IP. Only the first
// call does anything.
func (p *Pod) delete(ctx context.Context) error {
	p.deleteOnce.Do(func() {
		if p.kubelet != nil {
			p.kubelet.stop()
		}
		var err error
		if p.created {
			zero := int64(0)
			err = ignoreNotFound(p.cluster.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}))
			if err != nil {
				err = fmt.Errorf("delete Pod object: %w", err)
			}
		}
		if proc := p.Process(); proc != nil {
			proc.Stop()
		}
		p.deleteErr = errors.Join(err, releaseAddr(p.IP))
	})
	return p.deleteErr
}

// reportProcess fails t if proc ended on its own (unless that was reported
// already), and shows the end of its log if t failed.
func reportProcess(t testing.TB, proc *Process) {
	if proc == nil {
		return
	}
	if proc.exitedOnItsOwn() && !proc.reported.Load() {
		t.Errorf("harness: %v", proc.exitError())
	} else if t.Failed() {
		t.Logf("last lines of %s (%s):\n%s", proc.Name, proc.LogPath, proc.Tail(10))
	}
}

// setProcess makes proc the pod's current process.
func (p *Pod) setProcess(proc *Process) {
	p.procMu.Lock()
	defer p.procMu.Unlock()
	p.proc = proc
}
