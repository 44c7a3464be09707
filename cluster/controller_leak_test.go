package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Per-service locks exist only while a writer uses them: names that API
// calls merely mention (unknown services, unknown instances) leave nothing.
func TestServiceLocksDoNotPileUp(t *testing.T) {
	n := newNode(t, "10.96.0.0/16")
	ctx := context.Background()
	cast(t, n, svcYAML("api", "default", ""))
	for i := 0; i < 100; i++ {
		in := Instance{ID: fmt.Sprintf("i-%d", i), Service: fmt.Sprintf("ghost-%d", i), Node: "n1", IP: netip.AddrFrom4([4]byte{172, 16, 0, byte(i + 1)})}
		if _, err := n.ctl.RegisterInstance(ctx, in); KindOf(err) != KindNotFound {
			t.Fatalf("registering under an unknown service: %v", err)
		}
	}
	for i := 0; i < 10; i++ {
		in := Instance{ID: fmt.Sprintf("api-%d", i), Service: "api", Node: "n1", IP: netip.AddrFrom4([4]byte{172, 16, 1, byte(i + 1)}), Ready: true}
		if _, err := n.ctl.RegisterInstance(ctx, in); err != nil {
			t.Fatal(err)
		}
		if _, err := n.ctl.SetInstanceReady(ctx, in.ID, false); err != nil {
			t.Fatal(err)
		}
	}
	n.ctl.locksMu.Lock()
	defer n.ctl.locksMu.Unlock()
	if got := len(n.ctl.serviceMu); got != 0 {
		t.Fatalf("%d service locks left after every writer finished, want 0", got)
	}
}

// A deleted service's rune_endpoints_published_total series goes with it.
func TestDeletedServiceDropsItsEndpointsSeries(t *testing.T) {
	n := newNode(t, "10.96.0.0/16")
	ctx := context.Background()
	cast(t, n, svcYAML("gone", "metrics", ""), svcYAML("kept", "metrics", ""))
	for i, svc := range []string{"gone", "kept"} {
		in := Instance{ID: svc + "-1", Service: svc, Namespace: "metrics", Node: "n1", IP: netip.AddrFrom4([4]byte{172, 16, 2, byte(i + 1)}), Ready: true}
		if _, err := n.ctl.RegisterInstance(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if !hasSeries(t, "rune_endpoints_published_total", "gone", "metrics") {
		t.Fatal("no series for a service whose endpoints were published")
	}
	if _, err := n.ctl.DeleteService(ctx, NamespacedName{"metrics", "gone"}); err != nil {
		t.Fatal(err)
	}
	if hasSeries(t, "rune_endpoints_published_total", "gone", "metrics") {
		t.Fatal("rune_endpoints_published_total still has a series for the deleted service")
	}
	if !hasSeries(t, "rune_endpoints_published_total", "kept", "metrics") {
		t.Fatal("deleting one service dropped another's series")
	}
}

// hasSeries reports whether the default registry exports metric with the
// given service and namespace labels.
func hasSeries(t *testing.T, metric, service, namespace string) bool {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["service"] == service && labels["namespace"] == namespace {
				return true
			}
		}
	}
	return false
}
