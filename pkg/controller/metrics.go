package controller

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/nodemesh/nodemesh/pkg/smidiscovery"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// metrics are the controller's Prometheus metrics, on a registry of its own
// (several controllers may run in one test process).
type metrics struct {
	registry *prometheus.Registry

	buildDuration  prometheus.Histogram
	tableVersion   prometheus.Gauge
	objectErrors   prometheus.Gauge
	informerEvents *prometheus.CounterVec
	shadowWrites   *prometheus.CounterVec
	eventsEmitted  prometheus.Counter
	smiServed      *prometheus.GaugeVec
	leader         prometheus.Gauge

	writesTotal atomic.Int64

	sizeMu      sync.Mutex
	sizeVersion uint64
	size        int
}

const namespace = "nodemesh_controller_"

func newMetrics(c *Controller) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		buildDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    namespace + "build_duration_seconds",
			Help:    "Time to build and publish the routing table from the informer caches.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms to 16 s
		}),
		tableVersion: prometheus.NewGauge(prometheus.GaugeOpts{Name: namespace + "table_version", Help: "Version of the served routing table."}),
		objectErrors: prometheus.NewGauge(prometheus.GaugeOpts{Name: namespace + "object_errors", Help: "Objects errors found by the latest build (see /api/status/errors)."}),
		informerEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: namespace + "informer_events_total",
			Help: "Informer events by kind and event (add, update, delete, update-ignored).",
		}, []string{"kind", "event"}),
		shadowWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: namespace + "shadow_writes_total",
			Help: "Shadow Service writes sent to the apiserver, by verb.",
		}, []string{"verb"}),
		eventsEmitted: prometheus.NewCounter(prometheus.CounterOpts{Name: namespace + "events_emitted_total", Help: "Kubernetes Events emitted about object errors."}),
		smiServed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: namespace + "smi_served",
			Help: "1 for each SMI group read and the version read; 0 with version \"\" for a group that is off.",
		}, []string{"group", "version"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: namespace + "leader", Help: "1 while this replica leads (writes shadow Services)."}),
	}
	for _, v := range []string{"create", "update", "delete"} {
		m.shadowWrites.WithLabelValues(v) // present at 0 from the start
	}
	m.registry.MustRegister(
		m.buildDuration, m.tableVersion, m.objectErrors, m.informerEvents, m.shadowWrites, m.eventsEmitted, m.smiServed, m.leader,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: namespace + "table_size_bytes", Help: "Size of the served routing table as JSON."},
			func() float64 { return float64(m.tableSize(c.server.Version(), c.server.Current())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: namespace + "proxies_connected", Help: "Proxies holding a table watch open."},
			func() float64 { connected, _ := c.proxyCounts(); return float64(connected) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: namespace + "proxies_lagging", Help: "Proxies heard from whose applied table is older than the served one."},
			func() float64 { _, lagging := c.proxyCounts(); return float64(lagging) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: namespace + "shadow_backlog", Help: "Shadow Service writes waiting (0 on non-leaders)."},
			func() float64 { return float64(c.shadowBacklog()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *metrics) observeBuild(d time.Duration, version uint64, errors int) {
	m.buildDuration.Observe(d.Seconds())
	m.tableVersion.Set(float64(version))
	m.objectErrors.Set(float64(errors))
}

func (m *metrics) setSMI(r smidiscovery.Result) {
	for group, v := range map[string]string{
		smidiscovery.SplitGroup: r.Status.Split, smidiscovery.SpecsGroup: r.Status.Specs, smidiscovery.AccessGroup: r.Status.Access,
	} {
		val := 0.0
		if v != "" {
			val = 1
		}
		m.smiServed.WithLabelValues(group, v).Set(val)
	}
}

// tableSize encodes the table once per version, when scraped: the encoding
// costs as much as a small build, so builds do not pay for it.
func (m *metrics) tableSize(version uint64, t *table.Table) int {
	m.sizeMu.Lock()
	defer m.sizeMu.Unlock()
	if t == nil {
		return 0
	}
	if version != m.sizeVersion {
		b, _ := table.Encode(t)
		m.sizeVersion, m.size = version, len(b)
	}
	return m.size
}

// proxyCounts counts connected proxies and those behind the served version.
func (c *Controller) proxyCounts() (connected, lagging int) {
	v := c.server.Version()
	for _, n := range c.server.Nodes() {
		if n.Connected {
			connected++
		}
		if n.AppliedVersion != v {
			lagging++
		}
	}
	return connected, lagging
}

func (c *Controller) shadowBacklog() int {
	if w := c.writer.Load(); w != nil {
		return w.backlog()
	}
	return 0
}

// wrote counts one shadow write.
func (m *metrics) wrote(verb string) {
	m.shadowWrites.WithLabelValues(verb).Inc()
	m.writesTotal.Add(1)
}
