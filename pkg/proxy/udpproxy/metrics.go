package udpproxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/pkg/proxy/promreg"
)

// Values of the reason label of nodemesh_proxy_udp_dropped_total.
const (
	reasonDenied       = "denied"        // Options.Admit refused the source
	reasonSessionLimit = "session_limit" // the port's session table is full
	reasonNoEndpoints  = "no_endpoints"  // the route has no endpoint to use
	reasonBackendError = "backend_error" // dialling or writing to the backend failed
)

// metrics holds the collectors of one Manager. Labels are bounded by the
// number of services: never an IP or a port.
type metrics struct {
	datagrams *prometheus.CounterVec
	active    *prometheus.GaugeVec
	sessions  *prometheus.CounterVec
	dropped   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		datagrams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodemesh_proxy_udp_datagrams_total",
			Help: "UDP datagrams forwarded, by destination service and direction (to_backend, to_client).",
		}, []string{"namespace", "service", "direction"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nodemesh_proxy_udp_sessions_active",
			Help: "UDP client sessions currently open, by destination service.",
		}, []string{"namespace", "service"}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodemesh_proxy_udp_sessions_total",
			Help: "UDP client sessions opened, by destination service.",
		}, []string{"namespace", "service"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodemesh_proxy_udp_dropped_total",
			Help: "UDP datagrams from clients dropped, by destination service and reason (denied, session_limit, no_endpoints, backend_error).",
		}, []string{"namespace", "service", "reason"}),
	}
	m.datagrams = promreg.Register(reg, m.datagrams)
	m.active = promreg.Register(reg, m.active)
	m.sessions = promreg.Register(reg, m.sessions)
	m.dropped = promreg.Register(reg, m.dropped)
	return m
}

// routeMetrics are one route's children, bound once per Apply so the
// per-datagram path does no label lookups.
type routeMetrics struct {
	toBackend, toClient                                 prometheus.Counter
	active                                              prometheus.Gauge
	sessions                                            prometheus.Counter
	denied, sessionLimit, noEndpoints, backendErrorDrop prometheus.Counter
}

func (m *metrics) forService(namespace, name string) routeMetrics {
	return routeMetrics{
		toBackend:        m.datagrams.WithLabelValues(namespace, name, "to_backend"),
		toClient:         m.datagrams.WithLabelValues(namespace, name, "to_client"),
		active:           m.active.WithLabelValues(namespace, name),
		sessions:         m.sessions.WithLabelValues(namespace, name),
		denied:           m.dropped.WithLabelValues(namespace, name, reasonDenied),
		sessionLimit:     m.dropped.WithLabelValues(namespace, name, reasonSessionLimit),
		noEndpoints:      m.dropped.WithLabelValues(namespace, name, reasonNoEndpoints),
		backendErrorDrop: m.dropped.WithLabelValues(namespace, name, reasonBackendError),
	}
}
