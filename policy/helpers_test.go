package policy

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/orderedlog"
)

// testCluster is a real single-node control plane: Badger log, View and
// Controller, as runed runs them.
type testCluster struct {
	log  *orderedlog.BadgerLog
	view *cluster.View
	ctl  *cluster.Controller
}

func newTestCluster(tb testing.TB, opts cluster.ViewOptions) *testCluster {
	tb.Helper()
	lg, err := orderedlog.OpenBadger(tb.TempDir(), orderedlog.BadgerOptions{HeartbeatInterval: 20 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { lg.Close() })
	if err := cluster.Bootstrap(context.Background(), lg, netip.MustParsePrefix("10.96.0.0/16")); err != nil {
		tb.Fatal(err)
	}
	c := &testCluster{log: lg, view: cluster.NewView(lg, opts)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.view.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	c.ctl = cluster.NewController(lg, c.view, cluster.ControllerOptions{})
	return c
}

// cast applies service documents (YAML) in one batch and returns its seq.
func (c *testCluster) cast(tb testing.TB, docs ...string) uint64 {
	tb.Helper()
	files := make([]cluster.SourceFile, len(docs))
	for i, d := range docs {
		files[i] = cluster.SourceFile{Name: fmt.Sprintf("svc%d.yaml", i), Data: []byte(d)}
	}
	_, seq, err := c.ctl.Cast(context.Background(), files)
	if err != nil {
		tb.Fatalf("cast: %v", err)
	}
	return seq
}

// instance registers a ready instance of ns/svc at ip on node.
func (c *testCluster) instance(tb testing.TB, id, ns, svc, node, ip string) {
	tb.Helper()
	_, err := c.ctl.RegisterInstance(context.Background(), cluster.Instance{
		ID: id, Service: svc, Namespace: ns, Node: node, IP: netip.MustParseAddr(ip), Ready: true,
	})
	if err != nil {
		tb.Fatalf("register %s: %v", id, err)
	}
}

func (c *testCluster) vip(tb testing.TB, ns, name string) netip.Addr {
	tb.Helper()
	e, ok := c.view.Snapshot().Service(cluster.NamespacedName{Namespace: ns, Name: name})
	if !ok {
		tb.Fatalf("no service %s/%s", ns, name)
	}
	return e.Value.VIP
}
