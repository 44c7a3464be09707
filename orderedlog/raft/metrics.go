package raft

import (
	"strings"
	"sync/atomic"

	hraft "github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

var metrics = struct {
	forwarded    prometheus.Counter
	applySeconds prometheus.Histogram
}{
	forwarded: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rune_orderedlog_forwarded_total",
		Help: "Proposals this node forwarded to the Raft leader and got an answer for.",
	}),
	applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rune_raft_apply_duration_seconds",
		Help:    "Time on the leader from submitting a batch to Raft to its being applied there.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}),
}

// metricsLog is the log the gauges describe: the last one opened in this
// process (runed opens one).
var metricsLog atomic.Pointer[Log]

func setMetricsLog(l *Log)   { metricsLog.Store(l) }
func clearMetricsLog(l *Log) { metricsLog.CompareAndSwap(l, nil) }

func gauge(name, help string, f func(*Log) float64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
		if l := metricsLog.Load(); l != nil {
			return f(l)
		}
		return 0
	})
}

// collectors are every metric of this backend, made once: registering is
// per collector, so a second Open in one process registers nothing new.
var collectors = []prometheus.Collector{
	metrics.forwarded,
	metrics.applySeconds,
	gauge("rune_raft_leader", "1 while this node is the Raft leader.", func(l *Log) float64 {
		if l.raft.State() == hraft.Leader {
			return 1
		}
		return 0
	}),
	gauge("rune_raft_term", "This node's current Raft term.", func(l *Log) float64 { return float64(l.raft.CurrentTerm()) }),
	gauge("rune_raft_commit_index", "The highest Raft index this node knows to be committed.", func(l *Log) float64 { return float64(l.raft.CommitIndex()) }),
	gauge("rune_raft_applied_index", "The highest Raft index this node's state machine has applied.", func(l *Log) float64 { return float64(l.fsm.applied().index) }),
	gauge("rune_raft_last_contact_seconds", "Seconds since this node last knew a leader (0 on the leader).", func(l *Log) float64 { return l.SinceLeader().Seconds() }),
	clusterNodes{},
}

// clusterNodes is rune_cluster_nodes: the servers of the Raft configuration
// by role and by state as this node knows it (a peer other than the leader
// it follows counts as "unknown").
type clusterNodes struct{}

var clusterNodesDesc = prometheus.NewDesc("rune_cluster_nodes",
	"Servers in the Raft configuration by role (voter, non-voter) and state as this node knows it (leader, follower, candidate, shutdown, unknown).",
	[]string{"role", "state"}, nil)

func (clusterNodes) Describe(ch chan<- *prometheus.Desc) { ch <- clusterNodesDesc }

func (clusterNodes) Collect(ch chan<- prometheus.Metric) {
	l := metricsLog.Load()
	if l == nil {
		return
	}
	members, err := l.Members()
	if err != nil {
		return
	}
	type key struct{ role, state string }
	counts := map[key]int{}
	for _, m := range members {
		counts[key{RoleName(m.Voter), StateName(m.State)}]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(clusterNodesDesc, prometheus.GaugeValue, float64(n), k.role, k.state)
	}
}

// RoleName is a member's role as the CLI and the metrics spell it.
func RoleName(voter bool) string {
	if voter {
		return "voter"
	}
	return "non-voter"
}

// StateName is a member's Raft state as the CLI and the metrics spell it:
// lower case, "unknown" when this node does not know it.
func StateName(state string) string {
	if state == "" {
		return "unknown"
	}
	return strings.ToLower(state)
}
