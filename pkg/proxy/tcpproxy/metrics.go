package tcpproxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/pkg/proxy/promreg"
)

// Values of the result label of nodemesh_proxy_tcp_connections_total.
const (
	resultOK           = "ok"            // a backend accepted the connection
	resultDenied       = "denied"        // Options.Admit refused the source
	resultNoEndpoints  = "no_endpoints"  // the route has no endpoint to try
	resultConnectError = "connect_error" // every attempted endpoint failed
	resultLimited      = "limited"       // max-connections were already open
)

// Values of the direction label of nodemesh_proxy_tcp_bytes_total.
const (
	directionToBackend = "to_backend"
	directionToClient  = "to_client"
)

// metrics holds the collectors of one Manager. Labels are bounded by the
// number of services: never an IP or a port.
type metrics struct {
	connections *prometheus.CounterVec
	active      *prometheus.GaugeVec
	bytes       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodemesh_proxy_tcp_connections_total",
			Help: "TCP connections accepted by the proxy, by destination service and result (ok, denied, limited, no_endpoints, connect_error).",
		}, []string{"namespace", "service", "result"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nodemesh_proxy_tcp_active_connections",
			Help: "TCP connections currently proxied, by destination service.",
		}, []string{"namespace", "service"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodemesh_proxy_tcp_bytes_total",
			Help: "Bytes copied by the TCP proxy, by destination service and direction (to_backend, to_client).",
		}, []string{"namespace", "service", "direction"}),
	}
	m.connections = promreg.Register(reg, m.connections)
	m.active = promreg.Register(reg, m.active)
	m.bytes = promreg.Register(reg, m.bytes)
	return m
}

// routeMetrics are one route's children, bound once per Apply so the
// per-connection path does no label lookups.
type routeMetrics struct {
	ok, denied, limited, noEndpoints, connectError prometheus.Counter
	active                                         prometheus.Gauge
	toBackend, toClient                            prometheus.Counter
}

func (m *metrics) forService(namespace, name string) routeMetrics {
	return routeMetrics{
		ok:           m.connections.WithLabelValues(namespace, name, resultOK),
		denied:       m.connections.WithLabelValues(namespace, name, resultDenied),
		limited:      m.connections.WithLabelValues(namespace, name, resultLimited),
		noEndpoints:  m.connections.WithLabelValues(namespace, name, resultNoEndpoints),
		connectError: m.connections.WithLabelValues(namespace, name, resultConnectError),
		active:       m.active.WithLabelValues(namespace, name),
		toBackend:    m.bytes.WithLabelValues(namespace, name, directionToBackend),
		toClient:     m.bytes.WithLabelValues(namespace, name, directionToClient),
	}
}
