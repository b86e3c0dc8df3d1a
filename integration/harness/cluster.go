package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// startTimeout bounds Start. A warm start takes a few seconds; a loaded
// 2-core CI machine can take several times that.
const startTimeout = 2 * time.Minute

// clusterSeq numbers the clusters of this process; each gets its own
// addresses so that several can run at once in the one namespace.
var clusterSeq atomic.Int32

// Cluster is a running control plane: etcd, kube-apiserver and
// kube-controller-manager, with an admin client and the Nodes and Pods the
// test added. Everything stops when the test that called Start ends.
type Cluster struct {
	// ToolsDir is the folder the control-plane binaries came from.
	ToolsDir string
	// Dir holds the cluster's certificates, kubeconfigs, data and logs.
	Dir string
	// StartupTime is how long Start took, from the first process started
	// until the apiserver was ready and the controllers were working.
	StartupTime time.Duration
	// APIServerReadyTime is the part of StartupTime until /readyz passed.
	APIServerReadyTime time.Duration

	addrs      addressing
	restConfig *rest.Config
	kubeconfig string
	client     kubernetes.Interface
	controlled []*Process   // etcd, apiserver, controller manager
	network    *nodeNetwork // nil unless WithNodeNetworks

	mu        sync.Mutex
	nodes     map[string]*Node
	nodeCount int // nodes ever added: Node.Index, never reused
}

// Option changes how Start runs the control plane.
type Option func(*options)

type options struct {
	controllers    []string
	apiserverArgs  []string
	controllerArgs []string
	nodeNetworks   bool
}

// WithControllers replaces DefaultControllers as the list given to
// kube-controller-manager's --controllers.
func WithControllers(names ...string) Option {
	return func(o *options) { o.controllers = names }
}

// WithAPIServerArgs appends flags to kube-apiserver's command line; a later
// flag overrides an earlier one.
func WithAPIServerArgs(args ...string) Option {
	return func(o *options) { o.apiserverArgs = append(o.apiserverArgs, args...) }
}

// WithControllerManagerArgs appends flags to kube-controller-manager's
// command line.
func WithControllerManagerArgs(args ...string) Option {
	return func(o *options) { o.controllerArgs = append(o.controllerArgs, args...) }
}

// Start runs a control plane for the test and waits until it serves: the
// apiserver's /readyz passes and the controller manager has made the default
// ServiceAccount. It is stopped, and its addresses released, when t's test
// ends. Start skips the test when the harness cannot run here (see Main), and
// fails it if anything does not come up, printing the end of each log.
func Start(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	if !inNamespace() {
		if os.Getenv("CI") == "true" {
			t.Fatalf("harness cannot run: %s", skipReason)
		}
		t.Skipf("harness cannot run: %s", skipReason)
	}
	o := options{controllers: DefaultControllers}
	for _, opt := range opts {
		opt(&o)
	}
	toolsDir := os.Getenv(EnvToolsDir)
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		if _, err := findTool(toolsDir, name); err != nil {
			t.Fatal(err)
		}
	}
	n := clusterSeq.Add(1)
	if n > 254 {
		t.Fatalf("harness: more than 254 clusters in one test binary")
	}
	c := &Cluster{
		ToolsDir: toolsDir,
		Dir:      t.TempDir(),
		addrs: addressing{
			etcd:      netip.AddrFrom4([4]byte{127, 0, byte(n), 1}),
			apiserver: netip.AddrFrom4([4]byte{10, 239, 0, byte(n)}),
		},
		nodes: map[string]*Node{},
	}
	if err := claimAddr(c.addrs.apiserver, fmt.Sprintf("the apiserver of cluster %d", n)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = releaseAddr(c.addrs.apiserver) })
	if o.nodeNetworks {
		if err := c.setUpNodeNetwork(t, n); err != nil {
			t.Fatalf("harness: node network: %v", err)
		}
	}

	if err := c.start(t, o); err != nil {
		t.Fatalf("harness: control plane did not start: %v", err)
	}
	t.Logf("harness: control plane at %s ready in %s, apiserver in %s (logs in %s)", c.addrs.apiserverURL(),
		c.StartupTime.Round(time.Millisecond), c.APIServerReadyTime.Round(time.Millisecond), c.Dir)
	return c
}

// start writes the credentials, runs the three components in order and waits
// for each to work. Processes are registered for cleanup as they start.
func (c *Cluster) start(t testing.TB, o options) error {
	p, err := newPKI(c.Dir, net.IP(c.addrs.apiserver.AsSlice()))
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	c.restConfig = restConfigFor(c.addrs, p, p.admin)
	if c.kubeconfig, err = writeKubeconfig(c.Dir, "admin", c.restConfig); err != nil {
		return err
	}
	kcmKubeconfig, err := writeKubeconfig(c.Dir, "kube-controller-manager", restConfigFor(c.addrs, p, p.controllers))
	if err != nil {
		return err
	}
	if c.client, err = kubernetes.NewForConfig(c.restConfig); err != nil {
		return err
	}

	began := time.Now()
	if err := c.run(t, "etcd", etcdArgs(c.addrs, filepath.Join(c.Dir, "etcd"))); err != nil {
		return err
	}
	if err := c.run(t, "kube-apiserver", append(apiserverArgs(c.addrs, p), o.apiserverArgs...)); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	err = c.poll(ctx, func(ctx context.Context) (bool, error) {
		_, err := c.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for kube-apiserver /readyz: %w", err)
	}
	c.APIServerReadyTime = time.Since(began)
	kcmArgs := append(controllerManagerArgs(kcmKubeconfig, p, o.controllers), o.controllerArgs...)
	if err := c.run(t, "kube-controller-manager", kcmArgs); err != nil {
		return err
	}
	err = c.poll(ctx, func(ctx context.Context) (bool, error) {
		_, err := c.client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, ignoreNotFound(err)
	})
	if err != nil {
		return fmt.Errorf("waiting for kube-controller-manager to create ServiceAccount default/default: %w", err)
	}
	c.StartupTime = time.Since(began)
	return nil
}

// run starts a control-plane tool logging to Dir/<name>.log.
func (c *Cluster) run(t testing.TB, name string, args []string) error {
	path, err := c.tool(name)
	if err != nil {
		return err
	}
	p, err := startProcess(name, filepath.Join(c.Dir, name+".log"), path, args, nil)
	if err != nil {
		return err
	}
	manage(t, p)
	c.controlled = append(c.controlled, p)
	return nil
}

// NotYet makes an error that tells WaitFor to keep waiting. If the wait
// times out, the message of the last NotYet is shown: say what was seen.
func NotYet(format string, args ...any) error {
	return &notYetError{fmt.Sprintf(format, args...)}
}

type notYetError struct{ seen string }

func (e *notYetError) Error() string { return e.seen }

// poll calls cond every 100ms until it returns true, fails, ctx ends, or a
// control-plane process dies; the last case returns that process's log tail.
func (c *Cluster) poll(ctx context.Context, cond wait.ConditionWithContextFunc) error {
	var last *notYetError
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		for _, p := range c.controlled {
			if p.Exited() {
				return false, p.exitError()
			}
		}
		done, err := cond(ctx)
		if errors.As(err, &last) {
			return false, nil
		}
		return done, err
	})
	if err != nil && last != nil && ctx.Err() != nil {
		return fmt.Errorf("%w; last seen: %s", err, last.seen)
	}
	return err
}

// WaitFor polls cond every 100ms until it returns true, and fails the test,
// saying it was waiting for what, if cond returns an error, timeout passes,
// or a control-plane process dies. Return (false, NotYet(...)) from cond to
// keep waiting and say what was seen instead; (false, nil) waits silently.
func (c *Cluster) WaitFor(t testing.TB, timeout time.Duration, what string, cond wait.ConditionWithContextFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	if err := c.poll(ctx, cond); err != nil {
		t.Fatalf("waiting %s for %s: %v", timeout, what, err)
	}
}

// RESTConfig returns a copy of the admin client configuration (user
// nodemesh-admin, group system:masters).
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.restConfig) }

// Kubeconfig returns the path of an admin kubeconfig file for the cluster,
// whose current context is named "harness" (CoreDNS's kubernetes plugin,
// for one, needs that name).
func (c *Cluster) Kubeconfig() string { return c.kubeconfig }

// Client returns an admin clientset.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
