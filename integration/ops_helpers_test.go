package integration_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nodemesh/nodemesh/integration/harness"
	"github.com/nodemesh/nodemesh/pkg/controller"
	"github.com/nodemesh/nodemesh/pkg/controllerapi"
)

// Helpers of the operator-command tests (check_test.go, status_top_test.go,
// dashboard_test.go): a small shop mesh with real traffic, and the
// nodemesh binary run as an operator would.

// opsMesh is the demo mesh: in namespace shop, web split 80/20 between
// web-v1 and web-v2, and a client pod, on node-a; the controller in this
// process and a real proxy process.
type opsMesh struct {
	c      *harness.Cluster
	node   *harness.Node
	ctrl   *meshController
	proxy  *proxyProcess
	client *harness.Pod
	// http sends from the client pod's IP.
	http *http.Client
	// proxyAdmin is the proxy's admin URL.
	proxyAdmin string
}

// startOpsMesh builds the demo mesh; edit changes the controller's
// configuration.
func startOpsMesh(t *testing.T, edit func(*controller.Config)) *opsMesh {
	t.Helper()
	c := harness.Start(t)
	installSMICRDs(t, c)
	createNamespaces(t, c, "nodemesh", "shop")
	m := &opsMesh{c: c, node: c.AddNode(t, "node-a")}
	for _, v := range []string{"v1", "v2"} {
		c.StartPod(t, harness.PodSpec{Namespace: "shop", Name: "web-" + v, Node: "node-a", Labels: map[string]string{"app": "web", "version": v}})
	}
	m.client = c.StartPod(t, harness.PodSpec{Namespace: "shop", Name: "client", Node: "node-a", Labels: map[string]string{"app": "client"}})
	m.http = clientFromPod(m.client)
	t.Cleanup(m.http.CloseIdleConnections)
	port := []corev1.ServicePort{{Name: "web", Port: 80, TargetPort: intstr.FromString("http")}}
	for name, sel := range map[string]map[string]string{
		"web":    {"app": "web"},
		"web-v1": {"app": "web", "version": "v1"},
		"web-v2": {"app": "web", "version": "v2"},
	} {
		createService(t, c, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}, Spec: corev1.ServiceSpec{Selector: sel, Ports: port}})
	}
	if _, err := newSMIClients(t, c).split.SplitV1alpha4().TrafficSplits("shop").Create(t.Context(), &splitv1alpha4.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "canary"},
		Spec: splitv1alpha4.TrafficSplitSpec{Service: "web", Backends: []splitv1alpha4.TrafficSplitBackend{
			{Service: "web-v1", Weight: 80}, {Service: "web-v2", Weight: 20},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	m.ctrl = startController(t, c, edit)
	m.proxy = startProxy(t, "node-a", m.ctrl.URL)
	m.proxyAdmin = m.proxy.admin
	var webShadow *corev1.Service
	waitUntil(t, settle, "the web shadow service with its ClusterIP", func() bool {
		webShadow = shadowOf(t, c, "web--shop")
		return webShadow != nil && webShadow.Spec.ClusterIP != ""
	})
	waitUntil(t, settle, "web.shop.mesh to answer from the client pod", func() bool {
		code, err := m.get("web.shop.mesh")
		return err == nil && code == http.StatusOK
	})
	// The controller learns the shadow's ClusterIP from its shadow informer
	// and a rebuild (shadow events are coalesced for 500 ms); the proxy
	// routes Host <ClusterIP> once the table carries it. Tests that read
	// the ClusterIP back from status start after that.
	waitUntil(t, settle, "the proxy to route by the shadow's ClusterIP", func() bool {
		code, err := m.get(webShadow.Spec.ClusterIP)
		return err == nil && code == http.StatusOK
	})
	return m
}

// get sends GET / with Host host to the node's proxy from the client pod's
// IP, so the proxy names the client as the source.
func (m *opsMesh) get(host string) (int, error) { return m.getPath(host, "/") }

// getPath is get for another path (the whoami server answers
// /status/<code> with that code).
func (m *opsMesh) getPath(host, path string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+netip.AddrPortFrom(m.node.IP, proxyHTTPPort).String()+path, nil)
	if err != nil {
		return 0, err
	}
	req.Host = host
	resp, err := m.http.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// clientFromPod is an HTTP client whose connections are bound to pod's IP.
func clientFromPod(pod *harness.Pod) *http.Client {
	d := &net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: pod.IP.AsSlice()}}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DialContext: d.DialContext, MaxIdleConnsPerHost: 4}}
}

// sendRequests sends n requests to host from the client pod and fails the
// test on any error or non-200 answer.
func (m *opsMesh) sendRequests(t *testing.T, host string, n int) {
	t.Helper()
	for i := range n {
		code, err := m.get(host)
		if err != nil || code != http.StatusOK {
			t.Fatalf("request %d to %s: %d %v", i, host, code, err)
		}
	}
}

// backgroundTraffic sends requests for path to host until the returned
// stop is called, at most for limit (bounded, as every load loop), and
// returns how many were answered; calling it again returns the same.
func (m *opsMesh) backgroundTraffic(host, path string, every, limit time.Duration) (stop func() int) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	done := make(chan int)
	go func() {
		n := 0
		for ctx.Err() == nil {
			if _, err := m.getPath(host, path); err == nil {
				n++
			}
			select {
			case <-ctx.Done():
			case <-time.After(every):
			}
		}
		done <- n
	}()
	var once sync.Once
	var n int
	return func() int {
		once.Do(func() { cancel(); n = <-done })
		return n
	}
}

// runNodemesh runs the nodemesh binary with args and returns its stdout,
// stderr and exit code. It gives up after a minute.
func runNodemesh(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	bin, err := nodemeshBin()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("nodemesh %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), code
}

// exposeController makes the Service nodemesh/nodemesh-controller reach
// the controller of this process, so the operator commands can go through
// the apiserver's service proxy as they do in a cluster. The apiserver
// proxies only to pod endpoints, so a harness pod labelled as the
// controller stands for it: the controller listens on every address of the
// harness namespace, the pod's IP included, and the real EndpointSlice
// controller publishes that pod behind the Service.
func (m *opsMesh) exposeController(t *testing.T) {
	t.Helper()
	_, portText, _ := net.SplitHostPort(strings.TrimPrefix(m.ctrl.URL, "http://"))
	port, err := strconv.Atoi(portText)
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app.kubernetes.io/name": "nodemesh", "app.kubernetes.io/component": "controller"}
	m.c.StartPod(t, harness.PodSpec{Namespace: "nodemesh", Name: "nodemesh-controller-0", Node: m.node.Name, Labels: labels})
	createService(t, m.c, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "nodemesh", Name: "nodemesh-controller"},
		Spec: corev1.ServiceSpec{Selector: labels,
			Ports: []corev1.ServicePort{{Name: "api", Port: 9000, TargetPort: intstr.FromInt(port)}}},
	})
	api := controllerapi.ServiceProxy{Kube: m.c.Client()}
	m.c.WaitFor(t, settle, "the controller through the apiserver's service proxy", func(ctx context.Context) (bool, error) {
		_, code, err := api.Get(ctx, controller.PathReady)
		if err != nil {
			return false, harness.NotYet("%v", err)
		}
		return code == http.StatusOK, nil
	})
}
