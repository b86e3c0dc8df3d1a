package integration_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/nodemesh/nodemesh/integration/harness"
	"github.com/nodemesh/nodemesh/pkg/controller"
)

// meshController is a controller replica run in this process on a harness
// cluster.
type meshController struct {
	*controller.Controller
	// URL is the base URL of its API, e.g. http://127.0.0.1:40123.
	URL  string
	stop func()
}

// startController runs a controller on c with the defaults (leader election
// on, a random API port), changed by edit, and waits until it serves a
// table. It stops when the test ends, or earlier through Stop.
func startController(t *testing.T, c *harness.Cluster, edit func(*controller.Config)) *meshController {
	t.Helper()
	cfg := controller.DefaultConfig()
	cfg.APIPort = 0
	if edit != nil {
		edit(&cfg)
	}
	ctrl, err := controller.New(cfg, c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx) }()
	m := &meshController{Controller: ctrl}
	stopped := false
	m.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("controller Run: %v", err)
			}
		}
	}
	t.Cleanup(m.Stop)
	addr, err := ctrl.Addr(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	m.URL = fmt.Sprintf("http://127.0.0.1:%d", addr.Port)
	waitUntil(t, settle, "the controller to serve a table", func() bool { return ctrl.Ready() })
	return m
}

// Stop stops the replica and waits for it (releasing its lease).
func (m *meshController) Stop() { m.stop() }

// metric reads one sample of the replica's /metrics, 0 when absent.
func (m *meshController) metric(t *testing.T, name string) float64 {
	t.Helper()
	return metricSample(t, http.DefaultClient, m.URL+controller.PathMetrics, name)
}

// metricSample reads the sample series (name and labels, as exposed) from
// the Prometheus text at url, 0 when absent.
func metricSample(t *testing.T, client *http.Client, url, series string) float64 {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return 0
}

// shadowWrites sums the replica's shadow write counters.
func (m *meshController) shadowWrites(t *testing.T) float64 {
	var n float64
	for _, verb := range []string{"create", "update", "delete"} {
		n += m.metric(t, `nodemesh_controller_shadow_writes_total{verb="`+verb+`"}`)
	}
	return n
}

// proxyProcess is a real `nodemesh proxy` process.
type proxyProcess struct {
	cmd   *exec.Cmd
	admin string // http://127.0.0.1:<admin port>
	log   string
}

// Proxy ports of the tests' proxies; one proxy runs at a time.
const (
	proxyHTTPPort  = 7000
	proxyAdminPort = 7001
)

// startProxy runs `$NODEMESH_BIN proxy` for node against the controller at
// controllerURL and waits until it reports ready.
func startProxy(t *testing.T, node, controllerURL string) *proxyProcess {
	t.Helper()
	bin, err := nodemeshBin()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "proxy-"+node+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "proxy", "--node="+node, "--controller-url="+controllerURL,
		fmt.Sprintf("--http-port=%d", proxyHTTPPort), fmt.Sprintf("--admin-port=%d", proxyAdminPort))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proxyProcess{cmd: cmd, admin: fmt.Sprintf("http://127.0.0.1:%d", proxyAdminPort), log: logPath}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("proxy %s log:\n%s", node, tail(string(b), 40))
		}
	})
	waitUntil(t, settle, "the proxy to be ready", func() bool {
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("proxy exited: %s", tail(string(b), 20))
		default:
		}
		resp, err := plainHTTP.Get(p.admin + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// plainHTTP ignores proxy settings and keeps connections alive.
var plainHTTP = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}

// viaProxy sends GET / for host (a mesh name) to the proxy's shared HTTP
// port on 127.0.0.1 and returns the pod that answered.
//
// Clients in a cluster reach the proxy through the shadow Service's
// ClusterIP; that needs kube-proxy, which the multi-node issue adds to the
// harness. Until then the tests send to the proxy port directly with the
// Host header a client would send.
func viaProxy(host string, header http.Header) (string, error) {
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", proxyHTTPPort), nil)
	if err != nil {
		return "", err
	}
	req.Host = host
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := plainHTTP.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s via proxy: %d %s", host, resp.StatusCode, body)
	}
	who, err := decodeWhoAmI(body)
	if err != nil {
		return "", err
	}
	return who.Pod, nil
}

func decodeWhoAmI(body []byte) (harness.WhoAmI, error) {
	var who harness.WhoAmI
	if err := json.Unmarshal(body, &who); err != nil {
		return who, fmt.Errorf("not a WhoAmI: %v: %s", err, body)
	}
	return who, nil
}

// waitUntil polls cond every 20 ms until it holds or timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, timeout, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// createNamespaces creates namespaces.
func createNamespaces(t *testing.T, c *harness.Cluster, names ...string) {
	t.Helper()
	for _, ns := range names {
		if _, err := c.Client().CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// createService creates a Service.
func createService(t *testing.T, c *harness.Cluster, svc *corev1.Service) {
	t.Helper()
	if _, err := c.Client().CoreV1().Services(svc.Namespace).Create(t.Context(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// shadowOf gets a shadow Service in the mesh namespace, nil when missing.
func shadowOf(t *testing.T, c *harness.Cluster, name string) *corev1.Service {
	t.Helper()
	s, err := c.Client().CoreV1().Services("nodemesh").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return s
}

// dialEcho sends msg over network to addr and returns what comes back.
func dialEcho(network, addr, msg string) (string, error) {
	conn, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return "", err
	}
	return string(buf), nil
}
