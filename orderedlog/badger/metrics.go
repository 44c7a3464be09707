package badger

import "github.com/prometheus/client_golang/prometheus"

// groupBatches is the Badger backend's own metric; the rest are shared
// (orderedlog/internal/logmetrics).
var groupBatches = prometheus.NewHistogram(prometheus.HistogramOpts{
	Name:    "rune_orderedlog_commit_batches",
	Help:    "Batches made durable by one commit (group commit size).",
	Buckets: prometheus.ExponentialBuckets(1, 2, 11),
})
