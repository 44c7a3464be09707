package cluster

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/runenet/runenet/orderedlog"
)

var (
	vipAllocations = promauto.NewCounter(prometheus.CounterOpts{
		Name: "rune_vip_allocations_total",
		Help: "VIPs handed out to services (a re-cast that keeps its VIP does not count).",
	})
	endpointsPublished = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "rune_endpoints_published_total",
		Help: "Endpoint-set rewrites, one per scale or health change of a service.",
	}, []string{"service", "namespace"})
	nodesMarkedDown = promauto.NewCounter(prometheus.CounterOpts{
		Name: "rune_nodes_marked_down_total",
		Help: "Nodes the leader found silent past the grace period and whose instances it marked unready.",
	})
	applyLatency = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "rune_view_apply_latency_seconds",
		Help:    "Time from a batch's commit to the View applying it.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	})

	// metricsView is the process's View; the stale gauge reads it at scrape time.
	metricsView  atomic.Pointer[View]
	staleSeconds = promauto.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rune_dataplane_stale_seconds",
		Help: "Lag between this node's watch and the OrderedLog tail; consumers fail closed past the stale budget.",
	}, func() float64 {
		if v := metricsView.Load(); v != nil {
			return v.Lag().Seconds()
		}
		return 0
	})
)

func setMetricsView(v *View) { metricsView.Store(v) }

func observeApply(b *orderedlog.Batch) {
	if !b.Time.IsZero() {
		applyLatency.Observe(time.Since(b.Time).Seconds())
	}
}
