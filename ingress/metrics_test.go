package ingress

import (
	"context"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
)

// A deleted service's rune_ingress_requests_total series go with its route.
func TestDeletedServiceDropsItsRequestSeries(t *testing.T) {
	n := newNode(t)
	port := startBackend(t, "gone-1", "127.0.0.1", 0)
	ing := startIngress(t, n, ACMEOptions{})
	n.cast(t, "gone", port, "gone.example.test", "")
	n.cast(t, "kept", port, "kept.example.test", "")
	n.addInstance(t, "gone", "gone-1", "127.0.0.1")
	n.addInstance(t, "kept", "kept-1", "127.0.0.2")
	waitRoute(t, ing, "gone.example.test", 1)
	c := client(ing.HTTPAddr(), nil)
	get(t, c, "http://gone.example.test/")
	get(t, c, "http://kept.example.test/")
	series := func(host string) float64 {
		return testkit.Metric(t, "rune_ingress_requests_total", map[string]string{"host": host})
	}
	if series("gone.example.test") == 0 || series("kept.example.test") == 0 {
		t.Fatal("requests were not counted")
	}
	if _, err := n.Ctl.DeleteService(context.Background(), cluster.NamespacedName{Namespace: "default", Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the deleted service's route to go", func() bool { return ing.table.Load().lookup("gone.example.test") == nil })
	if got := series("gone.example.test"); got != 0 {
		t.Fatalf("rune_ingress_requests_total still counts %v requests for the deleted service's host", got)
	}
	if series("kept.example.test") == 0 {
		t.Fatal("deleting one service dropped another's series")
	}
}
