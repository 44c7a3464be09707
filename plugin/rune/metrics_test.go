package rune

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	// Their metrics are linted here too.
	_ "github.com/runenet/runenet/plugin/dataplane"
	_ "github.com/runenet/runenet/plugin/ingress"
	_ "github.com/runenet/runenet/plugin/netpolicy"
	_ "github.com/runenet/runenet/plugin/runegate"
)

// TestMetricsLint runs client_golang's promlint over every rune_* metric
// registered in this binary: ours, the other directives' (data plane,
// policy, ingress, runegate) and the cluster View's.
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
