package cluster

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/raft"
)

// A follower that has not applied the cluster's latest writes must not
// decide a write from its stale View: setting an instance's readiness to
// what the follower last saw (but another node has since changed) is not
// "already so" — acknowledging it without writing would lose it. Cut off
// from the leader, the follower cannot learn the current state, so it
// refuses; connected, it writes. The same holds for a refusal: the
// instance the follower has not seen yet is not "not found".
func TestControllerDecidesOnTheClustersStateNotAStaleView(t *testing.T) {
	opts := raft.TestOptions()
	opts.RetryWindow = time.Second
	c := raft.NewTestCluster(t, 3, opts)
	lead := c.WaitLeader()
	cut := (lead + 1) % 3
	near, far := startNode(t, c.Node(lead), ViewOptions{}), startNode(t, c.Node(cut), ViewOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Bootstrap(ctx, c.Node(lead), netip.MustParsePrefix("10.96.0.0/16")); err != nil {
		t.Fatal(err)
	}
	cast(t, near, svcYAML("api", "default", ""))
	in := Instance{ID: "api-1", Service: "api", Namespace: "default", Node: "n1", IP: netip.MustParseAddr("192.168.1.1"), Ready: true}
	seq, err := near.ctl.RegisterInstance(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if err := far.view.WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}

	c.Isolate(cut)
	if _, err := near.ctl.SetInstanceReady(ctx, in.ID, false); err != nil {
		t.Fatal(err)
	}
	in2 := in
	in2.ID, in2.IP = "api-2", netip.MustParseAddr("192.168.1.2")
	if _, err := near.ctl.RegisterInstance(ctx, in2); err != nil {
		t.Fatal(err)
	}
	// far still sees api-1 ready and no api-2.
	if _, err := far.ctl.SetInstanceReady(ctx, in.ID, true); !errors.Is(err, orderedlog.ErrUnavailable) {
		t.Errorf("setting ready on a cut-off follower whose View already shows it: %v, want ErrUnavailable (it cannot know the current state)", err)
	}
	if _, err := far.ctl.DeregisterInstance(ctx, in2.ID); !errors.Is(err, orderedlog.ErrUnavailable) {
		t.Errorf("deregistering, on a cut-off follower, an instance registered since the cut: %v, want ErrUnavailable, not not-found", err)
	}

	c.Heal(cut)
	if _, err := far.ctl.SetInstanceReady(ctx, in.ID, true); err != nil {
		t.Fatalf("setting ready through the healed follower: %v", err)
	}
	if e, _ := near.view.Snapshot().Instance(in.ID); e.Value == nil || !e.Value.Ready {
		seq, _ := c.Node(lead).Sync(ctx)
		near.view.WaitFor(ctx, seq)
		if e, _ := near.view.Snapshot().Instance(in.ID); e.Value == nil || !e.Value.Ready {
			t.Errorf("the leader's state lacks the ready flag the follower acknowledged: %+v", e.Value)
		}
	}
	if _, err := far.ctl.DeregisterInstance(ctx, in2.ID); err != nil {
		t.Errorf("deregistering through the healed follower an instance it had not seen: %v", err)
	}
}
