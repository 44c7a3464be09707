package main

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/runenet/runenet/orderedlog/badger"
	"github.com/runenet/runenet/orderedlog/raft"
)

// runedMetrics gathers every metric family this binary — runed's own link
// set: CoreDNS's plugins and every subsystem of ours — registers on the
// default registry, with one series of every labelled metric created first:
// a vector nobody has used yet is invisible to Gather (and so to /metrics
// and promlint) although runed exports it as soon as it counts anything.
// Both OrderedLog backends are opened, so the metrics of a cluster node
// (--cluster-addr) are among them.
func runedMetrics(t *testing.T) []*dto.MetricFamily {
	t.Helper()
	// The OrderedLog registers its metrics when a log is opened, as runed does at start.
	lg, err := badger.Open(t.TempDir(), badger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lg.Close()
	// A Raft node's gauges (rune_cluster_nodes among them) describe the
	// open log: it stays open until the test ends.
	raft.NewTestCluster(t, 1, raft.TestOptions()).Leader()

	reg := prometheus.DefaultRegisterer.(*prometheus.Registry)
	for _, c := range registeredCollectors(t, reg) {
		seedSeries(c)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	// Every metric described must now be gathered: one that is not was
	// not seeded, and would escape the lint and the deploy/ checks.
	gathered := map[string]bool{}
	for _, mf := range mfs {
		gathered[mf.GetName()] = true
	}
	descs := make(chan *prometheus.Desc)
	go func() { reg.Describe(descs); close(descs) }()
	for d := range descs {
		if name := descName(d); !gathered[name] {
			t.Errorf("metric %s is registered but has no series after seeding (%s)", name, d)
		}
	}
	return mfs
}

// registeredCollectors lists the collectors of reg. client_golang has no API
// for it, so it reads the registry's own map; should that field ever be
// renamed this fails loudly instead of linting nothing.
func registeredCollectors(t *testing.T, reg *prometheus.Registry) []prometheus.Collector {
	t.Helper()
	f := reflect.ValueOf(reg).Elem().FieldByName("collectorsByID")
	if !f.IsValid() || f.Kind() != reflect.Map {
		t.Fatal("prometheus.Registry has no collectorsByID map any more: update registeredCollectors")
	}
	f = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
	var cs []prometheus.Collector
	for it := f.MapRange(); it.Next(); {
		cs = append(cs, it.Value().Interface().(prometheus.Collector))
	}
	return cs
}

// seedSeries creates one series of a labelled vector, whatever its number of
// labels: a wrong count is refused by GetMetricWithLabelValues.
func seedSeries(c prometheus.Collector) {
	var get func(...string) error
	switch v := c.(type) {
	case *prometheus.CounterVec:
		get = func(l ...string) error { _, err := v.GetMetricWithLabelValues(l...); return err }
	case *prometheus.GaugeVec:
		get = func(l ...string) error { _, err := v.GetMetricWithLabelValues(l...); return err }
	case *prometheus.HistogramVec:
		get = func(l ...string) error { _, err := v.GetMetricWithLabelValues(l...); return err }
	case *prometheus.SummaryVec:
		get = func(l ...string) error { _, err := v.GetMetricWithLabelValues(l...); return err }
	default:
		return
	}
	var labels []string
	for len(labels) <= 16 && get(labels...) != nil {
		labels = append(labels, "lint")
	}
}

// descName is a Desc's fully-qualified name (its String is the only way in).
func descName(d *prometheus.Desc) string {
	s := d.String()
	_, rest, _ := strings.Cut(s, `fqName: "`)
	name, _, _ := strings.Cut(rest, `"`)
	return name
}

// seriesNames are the names a PromQL query can select for the families:
// a histogram's _bucket, _sum and _count, a summary's _sum and _count.
func seriesNames(mfs []*dto.MetricFamily) map[string]bool {
	names := map[string]bool{}
	for _, mf := range mfs {
		n := mf.GetName()
		names[n] = true
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[n+"_sum"], names[n+"_count"] = true, true
		}
	}
	return names
}

// TestMetricsLint runs client_golang's promlint over every rune_* metric
// runed registers, labelled ones included.
func TestMetricsLint(t *testing.T) {
	var ours []string
	for _, mf := range runedMetrics(t) {
		if !strings.HasPrefix(mf.GetName(), "rune_") {
			continue
		}
		ours = append(ours, mf.GetName())
		problems, err := promlint.NewWithMetricFamilies([]*dto.MetricFamily{mf}).Lint()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
	// The spec's metrics, several of them labelled, are among those linted.
	for _, want := range []string{"rune_vip_allocations_total", "rune_endpoints_published_total", "rune_dataplane_stale_seconds",
		"rune_policy_drops_total", "rune_policy_local_instances", "rune_ingress_requests_total", "rune_acme_certificates",
		"rune_raft_term", "rune_orderedlog_forwarded_total", "rune_cluster_nodes"} {
		if !slices.Contains(ours, want) {
			t.Errorf("%s was not linted (linted: %v)", want, ours)
		}
	}
}
