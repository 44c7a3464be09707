package policy

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/orderedlog/badger"
)

// testCluster is a real single-node control plane: Badger log, View and
// Controller, as runed runs them.
type testCluster struct{ *testkit.Cluster }

func newTestCluster(tb testing.TB, opts cluster.ViewOptions) *testCluster {
	tb.Helper()
	return &testCluster{testkit.NewCluster(tb, "10.96.0.0/16", badger.Options{HeartbeatInterval: 20 * time.Millisecond}, opts)}
}

// instance registers a ready instance of ns/svc at ip on node.
func (c *testCluster) instance(tb testing.TB, id, ns, svc, node, ip string) {
	tb.Helper()
	_, err := c.Ctl.RegisterInstance(context.Background(), cluster.Instance{
		ID: id, Service: svc, Namespace: ns, Node: node, IP: netip.MustParseAddr(ip), Ready: true,
	})
	if err != nil {
		tb.Fatalf("register %s: %v", id, err)
	}
}

func (c *testCluster) vip(tb testing.TB, ns, name string) netip.Addr {
	tb.Helper()
	e, ok := c.View.Snapshot().Service(cluster.NamespacedName{Namespace: ns, Name: name})
	if !ok {
		tb.Fatalf("no service %s/%s", ns, name)
	}
	return e.Value.VIP
}
