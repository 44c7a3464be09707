package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// The files operators load (deploy/) are checked against this binary.
const (
	alertRules = "../../deploy/prometheus/rune-alerts.yml"
	alertTests = "../../deploy/prometheus/rune-alerts.test.yml"
	dashboard  = "../../deploy/grafana/rune-dashboard.json"
	obsDoc     = "../../docs/observability.md"
)

// TestPrometheusRules checks the alerting rules the way Prometheus loads
// them, and runs their unit tests (each alert fires on the series it is
// about, and not before its bar).
func TestPrometheusRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("RUNE_E2E") != "" {
			t.Fatal("promtool not installed (make deps installs Debian's prometheus package)")
		}
		t.Skip("promtool not installed")
	}
	for _, args := range [][]string{{"check", "rules", alertRules}, {"test", "rules", alertTests}} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestAlertRulesNameExportedMetrics: every metric an alert selects is one
// runed exports, so no alert silently never fires.
func TestAlertRulesNameExportedMetrics(t *testing.T) {
	known := seriesNames(runedMetrics(t))
	b, err := os.ReadFile(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Record, Expr string
			}
		}
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			checkQuery(t, "alert "+r.Alert+r.Record, r.Expr, known)
		}
	}
	if n == 0 {
		t.Fatalf("%s holds no rules", alertRules)
	}
}

// TestDashboardNamesExportedMetrics: every query of every panel (and of
// the dashboard's variables) selects metrics runed exports.
func TestDashboardNamesExportedMetrics(t *testing.T) {
	known := seriesNames(runedMetrics(t))
	b, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		ID          int
		Title, Type string
		Targets     []struct{ Expr string }
		Panels      json.RawMessage // a collapsed row's panels
	}
	var d struct {
		Panels     []panel
		Templating struct {
			List []struct {
				Name, Type string
				Query      any
			}
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	queries := 0
	ids := map[int]string{} // Grafana keys panel state (links, edits) by id
	for _, p := range d.Panels {
		if other, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			checkQuery(t, "panel "+p.Title, tg.Expr, known)
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok && v.Type == "query" {
			// label_values(METRIC, label) is Grafana's, not PromQL: check its metric.
			expr, _ := q["query"].(string)
			inner, ok := strings.CutPrefix(expr, "label_values(")
			metric, _, _ := strings.Cut(inner, ",")
			if !ok || !known[strings.TrimSpace(metric)] {
				t.Errorf("variable %s: query %q does not name an exported metric", v.Name, expr)
			}
		}
	}
	if queries == 0 {
		t.Fatalf("%s holds no queries", dashboard)
	}
	// The panels the dashboard is for are there.
	var titles []string
	for _, p := range d.Panels {
		titles = append(titles, p.Title)
	}
	for _, want := range []string{"DNS queries by type", "DNS latency", "DNS responses by rcode", "Watch lag", "Endpoint churn",
		"Proxy connections", "Dial failures and ejections", "Policy drops", "Ingress requests by host", "Ingress responses by status", "Certificates by state"} {
		if !slices.Contains(titles, want) {
			t.Errorf("dashboard has no panel %q", want)
		}
	}
}

// TestObservabilityDocListsEveryMetric: docs/observability.md's table has a
// row for every rune_* metric runed exports, and names no other.
func TestObservabilityDocListsEveryMetric(t *testing.T) {
	mfs := runedMetrics(t)
	known := seriesNames(mfs)
	b, err := os.ReadFile(obsDoc)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(rune_[a-z_]+)`").FindAllStringSubmatch(string(b), -1) {
		rows[m[1]] = true
	}
	for _, mf := range mfs {
		if n := mf.GetName(); strings.HasPrefix(n, "rune_") && !rows[n] {
			t.Errorf("%s has no row in %s", n, obsDoc)
		}
	}
	for _, m := range regexp.MustCompile(`\b(?:rune|coredns)_[a-z_]+`).FindAllString(string(b), -1) {
		if !known[m] {
			t.Errorf("%s names %s, which runed does not export", obsDoc, m)
		}
	}
}

// The check above can fail: a misspelt metric is reported, and so is a
// query that is not PromQL.
func TestQueryCheckFindsUnknownMetrics(t *testing.T) {
	known := map[string]bool{"rune_policy_drops_total": true}
	if got, err := unknownMetrics(`sum(rate(rune_policy_drop_total[5m])) / sum(rate(rune_policy_drops_total[$__rate_interval]))`, known); err != nil || !slices.Equal(got, []string{"rune_policy_drop_total"}) {
		t.Errorf("got %v, %v; want rune_policy_drop_total reported", got, err)
	}
	if _, err := unknownMetrics(`sum(rate(rune_policy_drops_total[5m])`, known); err == nil {
		t.Error("an unbalanced query parsed")
	}
	if got, err := unknownMetrics(`vector(1)`, known); err != nil || len(got) != 1 {
		t.Errorf("a query selecting no metric: %v, %v; want it reported", got, err)
	}
}

func checkQuery(t *testing.T, where, expr string, known map[string]bool) {
	t.Helper()
	unknown, err := unknownMetrics(expr, known)
	if err != nil {
		t.Errorf("%s: %q: %v", where, expr, err)
	}
	for _, m := range unknown {
		t.Errorf("%s: %s is not a metric runed exports (query %q)", where, m, expr)
	}
}

// grafanaIntervals are the interval variables Grafana substitutes before a
// query reaches Prometheus.
var grafanaIntervals = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// unknownMetrics parses a PromQL query (Grafana's interval variables
// allowed) and returns the metric names it selects that are not in known.
// A query that selects no metric at all counts as one unknown.
func unknownMetrics(expr string, known map[string]bool) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaIntervals.Replace(expr))
	if err != nil {
		return nil, err
	}
	var unknown []string
	selected := 0
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			selected++
			if !known[vs.Name] {
				unknown = append(unknown, vs.Name)
			}
		}
		return nil
	})
	if selected == 0 {
		unknown = append(unknown, "(no metric selected)")
	}
	return unknown, nil
}
