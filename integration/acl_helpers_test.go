package integration_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/integration/harness"
)

// Helpers of the access-control tests (acl_test.go). A client pod is a
// harness pod whose IP the test binds its sockets to: the proxy then sees
// the pod's own address, as it would from a pod on its node.

// meshClient sends HTTP, TCP and UDP to the node proxy from one pod IP.
type meshClient struct {
	t     *testing.T
	src   netip.Addr
	proxy netip.Addr // the node's IP, where the node proxy listens
	http  *http.Client
}

func newMeshClient(t *testing.T, pod *harness.Pod, node *harness.Node) *meshClient {
	t.Helper()
	d := &net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: pod.IP.AsSlice()}}
	tr := &http.Transport{Proxy: nil, DialContext: d.DialContext, MaxIdleConnsPerHost: 2}
	t.Cleanup(tr.CloseIdleConnections)
	return &meshClient{t: t, src: pod.IP, proxy: node.IP, http: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
}

// aclResponse is what a request through the proxy got.
type aclResponse struct {
	code int
	body string
	who  harness.WhoAmI // set on 200
	err  error
}

func (r aclResponse) String() string {
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	if r.code == http.StatusOK {
		return "200 from " + r.who.Pod
	}
	return fmt.Sprintf("%d %q", r.code, r.body)
}

// do sends method path with Host host and header pairs to the proxy's
// shared HTTP port.
func (c *meshClient) do(method, host, path string, headers ...string) aclResponse {
	req, err := http.NewRequest(method, fmt.Sprintf("http://%s%s", netip.AddrPortFrom(c.proxy, proxyHTTPPort), path), nil)
	if err != nil {
		return aclResponse{err: err}
	}
	req.Host = host
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return aclResponse{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r := aclResponse{code: resp.StatusCode, body: string(b), err: err}
	if r.err == nil && r.code == http.StatusOK {
		r.who, r.err = decodeWhoAmI(b)
	}
	return r
}

// dialTCP connects to a TCP proxy port from the pod IP.
func (c *meshClient) dialTCP(port int32) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: c.src.AsSlice()}}
	return d.Dial("tcp", netip.AddrPortFrom(c.proxy, uint16(port)).String())
}

// tcpEcho sends msg on a new connection and returns the echo, or the error
// ("EOF" when the proxy closed the connection at accept).
func (c *meshClient) tcpEcho(port int32, msg string) (string, error) {
	conn, err := c.dialTCP(port)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return echoOn(conn, msg)
}

func echoOn(conn net.Conn, msg string) (string, error) {
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, msg); err != nil {
		return "", err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return "", err
	}
	return string(buf), nil
}

// udpClient is a UDP socket on a pod IP that talks to one proxy port.
//
// It is not a connected socket, and takes a reply from any address with the
// proxy port. The proxy answers from the address the client sent to (its
// wildcard listener reads each datagram's destination; udpproxy's
// TestRepliesComeFromTheAddressAsked), so a connected socket would work too.
type udpClient struct {
	conn *net.UDPConn
	dst  netip.AddrPort
}

// udpSocket opens a udpClient from the pod IP to a UDP proxy port.
func (c *meshClient) udpSocket(port int32) *udpClient {
	c.t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: c.src.AsSlice()})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close() })
	return &udpClient{conn: conn, dst: netip.AddrPortFrom(c.proxy, uint16(port))}
}

// udpAsk sends msg and waits up to wait for the echo.
func udpAsk(u *udpClient, msg string, wait time.Duration) (string, error) {
	if _, err := u.conn.WriteToUDPAddrPort([]byte(msg), u.dst); err != nil {
		return "", err
	}
	deadline := time.Now().Add(wait)
	_ = u.conn.SetReadDeadline(deadline)
	buf := make([]byte, 2048)
	for {
		n, from, err := u.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return "", err
		}
		if from.Port() == u.dst.Port() {
			return string(buf[:n]), nil
		}
	}
}

// logTableOnFailure logs the stream routes and pods of the table the proxy
// serves (its /config) if the test fails: what access control was applied.
func logTableOnFailure(t *testing.T, p *proxyProcess) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		resp, err := plainHTTP.Get(p.admin + "/config")
		if err != nil {
			t.Logf("proxy /config: %v", err)
			return
		}
		defer resp.Body.Close()
		var tb struct {
			ACL  bool            `json:"acl"`
			TCP  json.RawMessage `json:"tcp"`
			UDP  json.RawMessage `json:"udp"`
			Pods json.RawMessage `json:"pods"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&tb); err != nil {
			t.Logf("proxy /config: %v", err)
			return
		}
		t.Logf("proxy table: acl=%v\ntcp: %s\nudp: %s\npods: %s", tb.ACL, tb.TCP, tb.UDP, tb.Pods)
	})
}

// createServiceAccounts creates ServiceAccounts in ns.
func createServiceAccounts(t *testing.T, c *harness.Cluster, ns string, names ...string) {
	t.Helper()
	for _, n := range names {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n}}
		if _, err := c.Client().CoreV1().ServiceAccounts(ns).Create(t.Context(), sa, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// trafficTarget allows the service accounts sources of ns to reach the
// service account dest under rules.
func trafficTarget(ns, name, dest string, sources []string, rules ...accessv1alpha3.TrafficTargetRule) *accessv1alpha3.TrafficTarget {
	tt := &accessv1alpha3.TrafficTarget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: accessv1alpha3.TrafficTargetSpec{
			Destination: accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Name: dest, Namespace: ns},
			Rules:       rules,
		},
	}
	for _, s := range sources {
		tt.Spec.Sources = append(tt.Spec.Sources, accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Name: s, Namespace: ns})
	}
	return tt
}

// createSMI creates the SMI access and specs objects of the test.
func createSMI(t *testing.T, c *harness.Cluster, groups []*specsv1alpha4.HTTPRouteGroup, tcp []*specsv1alpha4.TCPRoute, udp []*specsv1alpha4.UDPRoute, targets []*accessv1alpha3.TrafficTarget) {
	t.Helper()
	cl := newSMIClients(t, c)
	ctx := t.Context()
	for _, o := range groups {
		if _, err := cl.specs.SpecsV1alpha4().HTTPRouteGroups(o.Namespace).Create(ctx, o, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range tcp {
		if _, err := cl.specs.SpecsV1alpha4().TCPRoutes(o.Namespace).Create(ctx, o, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// smi-sdk-go v0.5.0 leaves UDPRoute out of its scheme, so its typed
	// client cannot send one: kubectl can.
	for _, o := range udp {
		manifest := fmt.Sprintf("apiVersion: specs.smi-spec.io/v1alpha4\nkind: UDPRoute\nmetadata: {namespace: %s, name: %s}\nspec: {matches: {name: %s}}\n", o.Namespace, o.Name, o.Name)
		if _, _, err := kubectl(t, c, manifest, "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range targets {
		if _, err := cl.access.AccessV1alpha3().TrafficTargets(o.Namespace).Create(ctx, o, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// streamPorts returns the TCP and UDP proxy ports the controller allocated
// to a service, read from its shadow Service.
func streamPorts(t *testing.T, c *harness.Cluster, shadow string) (tcp, udp int32) {
	t.Helper()
	waitUntil(t, settle, "shadow "+shadow, func() bool { return shadowOf(t, c, shadow) != nil })
	for _, p := range shadowOf(t, c, shadow).Spec.Ports {
		switch p.Protocol {
		case corev1.ProtocolTCP:
			tcp = p.TargetPort.IntVal
		case corev1.ProtocolUDP:
			udp = p.TargetPort.IntVal
		}
	}
	if tcp == 0 || udp == 0 {
		t.Fatalf("shadow %s has TCP port %d and UDP port %d", shadow, tcp, udp)
	}
	return tcp, udp
}
