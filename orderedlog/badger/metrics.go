package badger

import (
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

var metrics = struct {
	proposeSeconds prometheus.Histogram
	groupBatches   prometheus.Histogram
	conflicts      prometheus.Counter
}{
	proposeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rune_orderedlog_propose_seconds",
		Help:    "Time from Propose to the batch being durable, for successful proposals.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}),
	groupBatches: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rune_orderedlog_commit_batches",
		Help:    "Batches made durable by one commit (group commit size).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 11),
	}),
	conflicts: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rune_orderedlog_conflicts_total",
		Help: "Proposals rejected because a precondition did not hold.",
	}),
}

var registerOnce sync.Once

// registerMetrics puts the metrics on the default registry the first time a
// log is opened, so binaries that merely link the package export nothing. A
// clash with someone else's metric must not take the log down, so it is only
// reported.
func registerMetrics(logger *slog.Logger) {
	registerOnce.Do(func() {
		for _, c := range []prometheus.Collector{metrics.proposeSeconds, metrics.groupBatches, metrics.conflicts} {
			if err := prometheus.Register(c); err != nil {
				logger.Warn("orderedlog metric not exported", "err", err)
			}
		}
	})
}
