// Package controllerapi is a client of the controller's read-only API
// (docs/controller.md) for the operator commands: `nodemesh check`,
// `status` and `top`. It reaches the controller either directly by URL
// (tests, port-forwards) or through the apiserver's service proxy, so an
// operator needs nothing but a kubeconfig.
package controllerapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/nodemesh/nodemesh/pkg/controller"
	"github.com/nodemesh/nodemesh/pkg/table"
	"github.com/nodemesh/nodemesh/pkg/topology"
)

// maxBody bounds what one API answer may weigh; a table of thousands of
// services is some MiB.
const maxBody = 256 << 20

// Getter fetches one API path and returns the body and status code. The
// status is returned rather than turned into an error because the
// readiness endpoint answers 503 with a useful body.
type Getter interface {
	Get(ctx context.Context, path string) (body []byte, status int, err error)
	// Where names the controller for messages ("http://127.0.0.1:9000").
	Where() string
}

// Client reads the controller API through a Getter.
type Client struct {
	g Getter
}

// New returns a Client over g.
func New(g Getter) *Client { return &Client{g: g} }

// Where names the controller for messages.
func (c *Client) Where() string { return c.g.Where() }

// Readiness reads /api/status/readiness. A 503 answer is not an error: the
// body says why the replica is not ready.
func (c *Client) Readiness(ctx context.Context) (controller.Readiness, error) {
	var r controller.Readiness
	return r, c.getJSON(ctx, controller.PathReadiness, &r, http.StatusOK, http.StatusServiceUnavailable)
}

// Nodes reads /api/status/nodes.
func (c *Client) Nodes(ctx context.Context) (controller.NodesStatus, error) {
	var n controller.NodesStatus
	return n, c.getJSON(ctx, controller.PathNodes, &n, http.StatusOK)
}

// Errors reads /api/status/errors.
func (c *Client) Errors(ctx context.Context) (controller.ErrorsStatus, error) {
	var e controller.ErrorsStatus
	return e, c.getJSON(ctx, controller.PathErrors, &e, http.StatusOK)
}

// Topology reads /api/topology/current.
func (c *Client) Topology(ctx context.Context) (*topology.Topology, error) {
	var t topology.Topology
	if err := c.getJSON(ctx, controller.PathTopology, &t, http.StatusOK); err != nil {
		return nil, err
	}
	return &t, nil
}

// Table reads /api/configuration/current, the served routing table.
func (c *Client) Table(ctx context.Context) (*table.Table, error) {
	var t table.Table
	if err := c.getJSON(ctx, controller.PathConfiguration, &t, http.StatusOK); err != nil {
		return nil, err
	}
	return &t, nil
}

func (c *Client) getJSON(ctx context.Context, path string, into any, ok ...int) error {
	body, status, err := c.g.Get(ctx, path)
	if err != nil {
		return fmt.Errorf("controller %s%s: %w", c.g.Where(), path, err)
	}
	accepted := false
	for _, s := range ok {
		accepted = accepted || s == status
	}
	if !accepted {
		return fmt.Errorf("controller %s%s: HTTP %d: %s", c.g.Where(), path, status, firstLine(body))
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("controller %s%s: %w", c.g.Where(), path, err)
	}
	return nil
}

// firstLine shortens an error body for a message.
func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// URL reaches the controller at a base URL such as http://127.0.0.1:9000.
type URL struct {
	Base   string
	Client *http.Client // nil means a client with a 10 s timeout
}

// Where returns the base URL.
func (u URL) Where() string { return strings.TrimRight(u.Base, "/") }

// Get sends GET base+path.
func (u URL) Get(ctx context.Context, path string) ([]byte, int, error) {
	hc := u.Client
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.Where()+path, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	return body, resp.StatusCode, err
}

// ServiceProxy reaches the controller through the apiserver's service
// proxy: /api/v1/namespaces/<Namespace>/services/<Service>:<Port>/proxy/...
type ServiceProxy struct {
	Kube      kubernetes.Interface
	Namespace string // default "nodemesh"
	Service   string // default "nodemesh-controller"
	Port      string // port number or name; default "9000"
}

// Where names the service.
func (s ServiceProxy) Where() string {
	s = s.withDefaults()
	return fmt.Sprintf("service %s/%s:%s (through the apiserver)", s.Namespace, s.Service, s.Port)
}

func (s ServiceProxy) withDefaults() ServiceProxy {
	if s.Namespace == "" {
		s.Namespace = topology.DefaultMeshNamespace
	}
	if s.Service == "" {
		s.Service = "nodemesh-controller"
	}
	if s.Port == "" {
		s.Port = "9000"
	}
	return s
}

// Get sends GET path through the service proxy.
func (s ServiceProxy) Get(ctx context.Context, path string) ([]byte, int, error) {
	s = s.withDefaults()
	return proxyGet(ctx, s.Kube, s.Namespace, "services", s.Service+":"+s.Port, path)
}

// proxyGet sends GET path through the apiserver's proxy subresource of a
// service or pod.
func proxyGet(ctx context.Context, kube kubernetes.Interface, namespace, resource, name, path string) ([]byte, int, error) {
	if kube == nil {
		return nil, 0, errors.New("no Kubernetes client")
	}
	var status int
	body, err := kube.CoreV1().RESTClient().Get().
		AbsPath("/api/v1/namespaces", namespace, resource, name, "proxy", path).
		Do(ctx).StatusCode(&status).Raw()
	if err != nil && status >= 400 && len(body) > 0 {
		// An error from the apiserver itself (no endpoints, forbidden)
		// comes as a v1 Status; anything else is the controller's answer
		// (a 503 readiness body), handed on.
		var st struct{ Kind, APIVersion, Message string }
		if json.Unmarshal(body, &st) == nil && st.Kind == "Status" && st.APIVersion == "v1" {
			return nil, status, fmt.Errorf("apiserver: %s", st.Message)
		}
		return body, status, nil
	}
	if err != nil {
		return nil, status, err
	}
	return body, status, nil
}
