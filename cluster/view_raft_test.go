package cluster

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/runenet/runenet/orderedlog/raft"
)

// Views on a three-node Raft cluster: a cast through one node shows in
// another's View; a node cut off from the majority goes stale past the
// budget, though its own log keeps beating, and recovers on heal.
func TestViewOnRaftFollowerFailsClosedWhenCutOff(t *testing.T) {
	c := raft.NewTestCluster(t, 3, raft.TestOptions())
	lead := c.WaitLeader()
	cut := (lead + 1) % 3
	far := startNode(t, c.Node(cut), ViewOptions{StaleBudget: time.Second})
	near := startNode(t, c.Node((lead+2)%3), ViewOptions{StaleBudget: time.Second})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Bootstrap(ctx, c.Node(cut), netip.MustParsePrefix("10.96.0.0/16")); err != nil {
		t.Fatal(err)
	}
	_, seq, err := far.ctl.Cast(ctx, []SourceFile{svcYAML("api", "default", "")})
	if err != nil {
		t.Fatal(err)
	}
	if err := near.view.WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
	if _, ok := near.view.Snapshot().Service(NamespacedName{Namespace: "default", Name: "api"}); !ok {
		t.Fatal("a service cast through one node is missing on another")
	}

	c.Isolate(cut)
	waitStale(t, far.view, true)
	if near.view.Stale() {
		t.Fatal("the majority's View went stale too")
	}
	c.Heal(cut)
	waitStale(t, far.view, false)
}

func waitStale(t *testing.T, v *View, want bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for v.Stale() != want {
		if time.Now().After(deadline) {
			t.Fatalf("View.Stale() still %v after 30s (lag %v)", !want, v.Lag())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
