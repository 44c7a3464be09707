// Package logmetrics holds the metrics every OrderedLog backend reports
// under the same names, and registers backend metrics once per process.
package logmetrics

import (
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	ProposeSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rune_orderedlog_propose_seconds",
		Help:    "Time from Propose to the batch being durable (and, on a replicated log, applied on this node), for successful proposals.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	Conflicts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rune_orderedlog_conflicts_total",
		Help: "Proposals rejected because a precondition did not hold.",
	})
)

var (
	mu         sync.Mutex
	registered = map[prometheus.Collector]bool{}
)

// Register puts the shared metrics and cs on the default registry the first
// time a backend opens, so binaries that merely link a backend export
// nothing. A clash with someone else's metric must not take the log down,
// so it is only reported.
func Register(logger *slog.Logger, cs ...prometheus.Collector) {
	mu.Lock()
	defer mu.Unlock()
	for _, c := range append([]prometheus.Collector{ProposeSeconds, Conflicts}, cs...) {
		if registered[c] {
			continue
		}
		registered[c] = true
		if err := prometheus.Register(c); err != nil {
			logger.Warn("orderedlog metric not exported", "err", err)
		}
	}
}
