package rune

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	_ "github.com/runenet/runenet/plugin/runegate" // its metrics are linted here too
)

// TestMetricsLint runs client_golang's promlint over every rune_* metric
// registered in this binary: ours, runegate's and the cluster View's.
func TestMetricsLint(t *testing.T) {
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "rune_") {
			continue
		}
		n++
		t.Log(mf.GetName())
		problems, err := promlint.NewWithMetricFamilies([]*dto.MetricFamily{mf}).Lint()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
	if n == 0 {
		t.Fatal("no rune_* metrics registered")
	}
}
