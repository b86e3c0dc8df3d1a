package httpproxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/pkg/proxy/balance"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// policyMetrics are the traffic-policy metrics of the HTTP data plane
// (docs/traffic-policy.md); metrics.go holds the request metrics.
type policyMetrics struct {
	faults          *prometheus.CounterVec
	maxRequests     *prometheus.CounterVec
	budgetExhausted *prometheus.CounterVec
	ejections       *prometheus.CounterVec
	overflow        *prometheus.CounterVec
	ejectedDesc     *prometheus.Desc
	rt              *Router
}

// servicePolicyMetrics resolves one service's series. A route build asks
// only for the series of the policies the route has, once, so requests do
// no label lookups and a service without policy exports no policy series
// (1,000 plain services would otherwise show 6,000 zeros).
type servicePolicyMetrics struct {
	m   *policyMetrics
	svc table.ServiceRef
}

func (p *servicePolicyMetrics) faultAbort() prometheus.Counter {
	return p.m.faults.WithLabelValues(p.svc.Namespace, p.svc.Name, "abort")
}

func (p *servicePolicyMetrics) faultDelay() prometheus.Counter {
	return p.m.faults.WithLabelValues(p.svc.Namespace, p.svc.Name, "delay")
}

func (p *servicePolicyMetrics) maxRequests() prometheus.Counter {
	return p.m.maxRequests.WithLabelValues(p.svc.Namespace, p.svc.Name)
}

func (p *servicePolicyMetrics) budgetExhausted() prometheus.Counter {
	return p.m.budgetExhausted.WithLabelValues(p.svc.Namespace, p.svc.Name)
}

func (p *servicePolicyMetrics) ejections() prometheus.Counter {
	return p.m.ejections.WithLabelValues(p.svc.Namespace, p.svc.Name)
}

func (p *servicePolicyMetrics) overflow() prometheus.Counter {
	return p.m.overflow.WithLabelValues(p.svc.Namespace, p.svc.Name)
}

func newPolicyMetrics(reg prometheus.Registerer, rt *Router) *policyMetrics {
	svc := []string{"namespace", "service"}
	m := &policyMetrics{
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodemesh_proxy_http_faults_injected_total",
			Help: "Requests delayed or aborted by fault injection (a test tool), by destination service and fault (delay, abort).",
		}, append(svc, "fault")),
		maxRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodemesh_proxy_http_max_requests_rejected_total",
			Help: "Requests answered 503 because max-requests were already in flight, by destination service.",
		}, svc),
		budgetExhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodemesh_proxy_http_retry_budget_exhausted_total",
			Help: "Retries not made because the retry budget was spent, by destination service.",
		}, svc),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodemesh_proxy_http_outlier_ejections_total",
			Help: "Endpoints ejected by outlier detection, by destination service.",
		}, svc),
		overflow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodemesh_proxy_http_outlier_ejections_overflow_total",
			Help: "Ejections not made because the backend already had its maximum share of endpoints ejected, by destination service.",
		}, svc),
		ejectedDesc: prometheus.NewDesc("nodemesh_proxy_http_outlier_ejected_endpoints",
			"Endpoints ejected now by outlier detection, by destination service.", svc, nil),
		rt: rt,
	}
	if reg != nil {
		reg.MustRegister(m.faults, m.maxRequests, m.budgetExhausted, m.ejections, m.overflow, m)
	}
	return m
}

func (m *policyMetrics) forService(s table.ServiceRef) *servicePolicyMetrics {
	return &servicePolicyMetrics{m: m, svc: s}
}

// forget drops the series of a service that left the table.
func (m *policyMetrics) forget(s table.ServiceRef) {
	l := prometheus.Labels{"namespace": s.Namespace, "service": s.Name}
	for _, v := range []*prometheus.CounterVec{m.faults, m.maxRequests, m.budgetExhausted, m.ejections, m.overflow} {
		v.DeletePartialMatch(l)
	}
}

// Describe implements prometheus.Collector for the ejected-endpoints gauge.
func (m *policyMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.ejectedDesc }

// Collect reports the endpoints ejected now, per service with outlier
// detection. Ejections end by the clock, not by an event, so the gauge is
// computed at scrape time from the serving routes.
func (m *policyMetrics) Collect(ch chan<- prometheus.Metric) {
	p := m.rt.current.Load()
	ejected := map[table.ServiceRef]int{}
	for _, r := range p.routes {
		if r.pol == nil || r.spec.Middleware.Outlier == nil {
			continue
		}
		ejected[r.spec.Service] += balance.Ejected(r.pol.sets...)
	}
	for s, n := range ejected {
		ch <- prometheus.MustNewConstMetric(m.ejectedDesc, prometheus.GaugeValue, float64(n), s.Namespace, s.Name)
	}
}
