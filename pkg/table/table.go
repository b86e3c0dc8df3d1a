// Package table defines the routing table: the plain data the controller
// produces and every node proxy consumes. It holds no Kubernetes types, so a
// proxy can equally be fed from a file (see docs/routing-table.md).
//
// Every slice in a Table is sorted by the producer (the controller sorts before it publishes), so the same
// cluster always encodes to the same bytes.
package table

import "encoding/json"

// SchemaVersion is the version of this Go type. A proxy refuses a table whose
// Schema it does not know.
const SchemaVersion = 1

// Table is one complete routing table for every node proxy of a mesh.
type Table struct {
	// Schema is SchemaVersion of the producer.
	Schema int `json:"schema"`
	// Version increases by one each time the content changes. It is set by
	// the controller when it publishes; a file-fed table may leave it 0.
	Version uint64 `json:"version"`
	// ACL turns on access control: with ACL true, a request or connection
	// passes only when an Allow rule of its route admits its source. With ACL
	// false the Allow fields are ignored.
	ACL bool `json:"acl"`
	// HTTP lists the routes served by the proxy's single shared HTTP
	// listener, sorted by Service then Port.
	HTTP []HTTPRoute `json:"http,omitempty"`
	// TCP lists one listener per proxy port, sorted by ProxyPort.
	TCP []StreamRoute `json:"tcp,omitempty"`
	// UDP lists one listener per proxy port, sorted by ProxyPort.
	UDP []StreamRoute `json:"udp,omitempty"`
	// Nodes lists the nodes whose zone is known, sorted by Name. A proxy
	// finds its own zone here for zone-aware balancing (Locality); a node
	// without a zone is left out.
	Nodes []Node `json:"nodes,omitempty"`
	// Pods maps source IPs to identities, sorted by IP. The proxy uses it to
	// name the client of a connection (ACL, edge metrics). It never trusts a
	// forwarded header for that. In JSON the pods are grouped (see PodList).
	// It is the last field, so an Encoder can append a kept encoding of it.
	Pods PodList `json:"pods,omitempty"`
}

// Node is one cluster node and its topology.kubernetes.io/zone.
type Node struct {
	Name string `json:"name"`
	Zone string `json:"zone"`
}

// ServiceRef names a Kubernetes Service.
type ServiceRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// String returns "namespace/name".
func (s ServiceRef) String() string { return s.Namespace + "/" + s.Name }

// Scheme is how the proxy speaks to a service's backends.
type Scheme string

// Schemes a service may use towards its backends.
const (
	SchemeHTTP  Scheme = "http"
	SchemeHTTPS Scheme = "https"
	SchemeH2C   Scheme = "h2c"
)

// HTTPRoute serves one port of one mesh service on the shared HTTP listener.
type HTTPRoute struct {
	// Service is the mesh service this route serves.
	Service ServiceRef `json:"service"`
	// Port is the service port clients call (the shadow service's port).
	Port int32 `json:"port"`
	// Hosts are the lower-case host names (no port) that select this route
	// together with Port: "name.ns.mesh" and every alias, plus the shadow
	// service's ClusterIP. Sorted.
	Hosts []string `json:"hosts"`
	// DefaultPort makes this route also answer a Host header that carries no
	// port. At most one route per host name sets it (port 80, or the only
	// HTTP port of the service).
	DefaultPort bool `json:"defaultPort,omitempty"`
	// Scheme is the protocol towards the backends.
	Scheme Scheme `json:"scheme"`
	// Matches are A/B rules tried in order; the first that holds picks its
	// Backends. A request that matches none goes to Backends.
	Matches []HTTPMatchRoute `json:"matches,omitempty"`
	// Backends serve every request no Match took.
	Backends []Backend `json:"backends"`
	// Middleware configures retries, circuit breaking and rate limits.
	Middleware Middleware `json:"middleware"`
	// Allow lists who may call this route when Table.ACL is on.
	Allow []HTTPAllow `json:"allow,omitempty"`
}

// HTTPMatch selects requests. Every set field must hold (AND); an empty
// HTTPMatch matches every request.
type HTTPMatch struct {
	// PathRegex is a Go regular expression anchored at the start of the path,
	// every alternative of it (httpmatch.Anchor: one not anchored as a whole
	// is read as "^(?:expr)").
	PathRegex string `json:"pathRegex,omitempty"`
	// Methods are upper-case method names; "*" or empty means any.
	Methods []string `json:"methods,omitempty"`
	// Headers must all be present with values matching their regex.
	Headers []HeaderMatch `json:"headers,omitempty"`
}

// HeaderMatch requires a header whose value matches Regex (unanchored).
type HeaderMatch struct {
	Name  string `json:"name"`
	Regex string `json:"regex"`
}

// HTTPMatchRoute is one A/B rule: requests matching Match go to Backends.
type HTTPMatchRoute struct {
	// Name identifies the rule, e.g. "<HTTPRouteGroup>/<match name>".
	Name     string    `json:"name"`
	Match    HTTPMatch `json:"match"`
	Backends []Backend `json:"backends"`
}

// Backend is one weighted group of endpoints, typically one Service: the
// root service itself, or one backend of a TrafficSplit.
type Backend struct {
	// Service is the Kubernetes Service these endpoints belong to.
	Service ServiceRef `json:"service"`
	// Weight is this backend's share relative to its siblings. The proxy
	// first picks a Backend by weight, then an endpoint within it.
	Weight int32 `json:"weight"`
	// Endpoints are the ready endpoints, sorted by Address.
	Endpoints []Endpoint `json:"endpoints"`
}

// Endpoint is one ready backend address.
type Endpoint struct {
	// Address is "ip:port" of the pod.
	Address string `json:"address"`
	// Node is the node the pod runs on, when known.
	Node string `json:"node,omitempty"`
	// Zone is the node's topology.kubernetes.io/zone, when known.
	Zone string `json:"zone,omitempty"`
}

// Middleware holds per-service HTTP policy. Zero values mean "off".
type Middleware struct {
	// RetryAttempts retries a request on network errors only, up to this
	// many attempts in all. Bodies are buffered for replay; a body larger
	// than the buffer is never replayed.
	RetryAttempts int `json:"retryAttempts,omitempty"`
	// CircuitBreaker is an oxy cbreaker expression, e.g.
	// "NetworkErrorRatio() > 0.5".
	CircuitBreaker string `json:"circuitBreaker,omitempty"`
	// RateLimit limits requests per source IP.
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
	// RequestTimeout bounds a whole request, retries included; past it the
	// client gets 504. Zero means only the proxy's response-header timeout.
	RequestTimeout Duration `json:"requestTimeout,omitempty"`
	// MaxRequests caps the requests of this route in flight from one proxy;
	// the next one gets 503. Zero means no limit.
	MaxRequests int `json:"maxRequests,omitempty"`
	// RetryBudget caps retries as a share of the request rate. Nil means no
	// budget (the controller always sets one when RetryAttempts > 1).
	RetryBudget *RetryBudget `json:"retryBudget,omitempty"`
	// Outlier ejects endpoints that keep failing. Nil means off.
	Outlier *Outlier `json:"outlier,omitempty"`
	// Locality prefers endpoints near the proxy. Nil means off.
	Locality *Locality `json:"locality,omitempty"`
	// Faults injects errors and delays, for resilience tests. Nil means off.
	Faults *Faults `json:"faults,omitempty"`
}

// RetryBudget lets retries add at most Percent of the request rate, counted
// over a sliding Window, with a floor of MinPerSecond retries per second so
// that a quiet service can still retry.
type RetryBudget struct {
	// Percent is retries allowed per 100 requests, 0-100.
	Percent int `json:"percent"`
	// MinPerSecond retries per second are allowed whatever the rate.
	MinPerSecond int `json:"minPerSecond"`
	// Window is the span requests and retries are counted over (1s-1m).
	Window Duration `json:"window"`
}

// Outlier is passive health checking: an endpoint that answers
// ConsecutiveErrors gateway errors in a row (a 5xx status, or a connect or
// network failure) is ejected from balancing for BaseEjectionTime times the
// number of times it was ejected, at most MaxEjectionTime.
type Outlier struct {
	// ConsecutiveErrors ejects an endpoint after this many errors in a row.
	ConsecutiveErrors int `json:"consecutiveErrors"`
	// BaseEjectionTime is the first ejection's length.
	BaseEjectionTime Duration `json:"baseEjectionTime"`
	// MaxEjectionTime caps an ejection's length.
	MaxEjectionTime Duration `json:"maxEjectionTime"`
	// MaxEjectionPercent caps the share of a backend's endpoints ejected at
	// once (1-100). At least one endpoint may be ejected, and never the
	// last one left.
	MaxEjectionPercent int `json:"maxEjectionPercent"`
}

// LocalityMode says which endpoints a proxy prefers.
type LocalityMode string

// Locality modes.
const (
	// LocalityNode prefers endpoints on the proxy's node, then its zone.
	LocalityNode LocalityMode = "node"
	// LocalityZone prefers endpoints in the proxy's zone.
	LocalityZone LocalityMode = "zone"
)

// Locality prefers near endpoints: the proxy tries its own node (Prefer
// node), then its zone, then any endpoint. A tier is passed over when all of
// its endpoints are ejected (Outlier) or overloaded.
type Locality struct {
	// Prefer is "node" or "zone".
	Prefer LocalityMode `json:"prefer"`
	// MaxInFlight makes a preferred endpoint overloaded once this many
	// requests (HTTP) or connections (TCP) from this proxy are in flight on
	// it. Zero means never overloaded.
	MaxInFlight int `json:"maxInFlight,omitempty"`
}

// Faults injects failures into a share of requests. It is a test tool.
type Faults struct {
	// AbortPercent of requests (0-100) get AbortStatus from the proxy
	// without reaching a backend.
	AbortPercent float64 `json:"abortPercent,omitempty"`
	// AbortStatus is the status of an aborted request (200-599).
	AbortStatus int `json:"abortStatus,omitempty"`
	// DelayPercent of requests (0-100) wait Delay before going on.
	DelayPercent float64 `json:"delayPercent,omitempty"`
	// Delay is the injected delay.
	Delay Duration `json:"delay,omitempty"`
}

// RateLimit is a token bucket per source IP.
type RateLimit struct {
	// Average is the sustained rate, in requests per second.
	Average int64 `json:"average"`
	// Burst is the bucket size.
	Burst int64 `json:"burst"`
}

// StreamRoute is one TCP or UDP listener on the proxy.
type StreamRoute struct {
	// Service is the mesh service this listener serves.
	Service ServiceRef `json:"service"`
	// Port is the service port clients call.
	Port int32 `json:"port"`
	// ProxyPort is the port the proxy listens on (allocated by the
	// controller, unique per protocol).
	ProxyPort int32 `json:"proxyPort"`
	// Backends are chosen by weight per connection (TCP) or per client
	// session (UDP).
	Backends []Backend `json:"backends"`
	// Allow lists who may connect when Table.ACL is on.
	Allow []StreamAllow `json:"allow,omitempty"`
	// IdleTimeout closes a TCP connection, or ends a UDP session, idle this
	// long. Zero means the proxy's default (--tcp-idle-timeout,
	// --udp-idle-timeout).
	IdleTimeout Duration `json:"idleTimeout,omitempty"`
	// MaxConnections caps the open connections of this TCP route on one
	// proxy; a connection over it is closed at once. Zero means no limit.
	// Ignored for UDP.
	MaxConnections int `json:"maxConnections,omitempty"`
	// Locality prefers near endpoints for new connections and sessions.
	// Nil means off.
	Locality *Locality `json:"locality,omitempty"`
}

// Identity is a workload identity: a ServiceAccount.
type Identity struct {
	Namespace      string `json:"namespace"`
	ServiceAccount string `json:"serviceAccount"`
}

// HTTPAllow admits requests from Sources that match one of Matches. An empty
// Matches admits nothing (a TrafficTarget with no rules allows nothing).
type HTTPAllow struct {
	Sources []Identity  `json:"sources"`
	Matches []HTTPMatch `json:"matches"`
}

// StreamAllow admits connections or datagrams from Sources.
type StreamAllow struct {
	Sources []Identity `json:"sources"`
}

// Pod is the identity behind one pod IP.
type Pod struct {
	IP             string `json:"ip"`
	Namespace      string `json:"namespace"`
	Name           string `json:"name"`
	ServiceAccount string `json:"serviceAccount"`
	Node           string `json:"node,omitempty"`
	// Workload is the owning controller ("Deployment/web"), or "Pod/<name>"
	// when there is none. Used as a bounded metrics label.
	Workload string `json:"workload,omitempty"`
}

// Encode returns the canonical JSON encoding of t.
func Encode(t *Table) ([]byte, error) { return json.Marshal(t) }
