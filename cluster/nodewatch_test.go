package cluster

import (
	"context"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The leader judges silence by its own clock from when it saw a record
// change, starts afresh when it becomes leader, and never judges itself, a
// node already down, or anyone while it does not lead.
func TestNodeWatchJudgesSilenceByItsOwnClock(t *testing.T) {
	n := newClusterNode(t)
	registerNode(t, n, NodeSpec{Name: "n1"})
	registerNode(t, n, NodeSpec{Name: "n2"})
	registerNode(t, n, NodeSpec{Name: "slow", HeartbeatEvery: 20 * time.Second})
	var leader atomic.Bool
	now := time.Unix(1000, 0)
	w := &nodeWatch{c: n.ctl, opts: NodeWatchOptions{Self: "n1", Grace: 30 * time.Second, IsLeader: leader.Load, Now: func() time.Time { return now }}}
	names := func(ds []dead) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.name)
		}
		return out
	}
	if got := w.check(n.view.Snapshot()); got != nil {
		t.Fatalf("a follower judged %v", names(got))
	}
	now = now.Add(time.Hour) // silence while following does not count
	leader.Store(true)
	if got := w.check(n.view.Snapshot()); got != nil {
		t.Fatalf("a new leader judged %v at once", names(got))
	}
	now = now.Add(29 * time.Second)
	if got := w.check(n.view.Snapshot()); got != nil {
		t.Fatalf("within the grace: %v", names(got))
	}
	// n2 beats (with a heartbeat time far in the past: the leader does not read it).
	n.mu.Lock()
	n.now = time.Unix(0, 0)
	n.mu.Unlock()
	if _, err := n.ctl.Heartbeat(context.Background(), "n2"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second)
	if got := names(w.check(n.view.Snapshot())); len(got) != 0 {
		t.Fatalf("31s after the election, n2 beaten 2s ago, slow's 3 beats not yet missed: judged %v", got)
	}
	now = now.Add(30 * time.Second)
	if got := names(w.check(n.view.Snapshot())); !slices.Equal(got, []string{"n2", "slow"}) {
		t.Fatalf("judged %v, want n2 (silent 30s) and slow (61s, past 3×20s); never n1 itself", got)
	}
	if marked, _, err := n.ctl.MarkNodeDown(context.Background(), "n2", w.seen["n2"].rev); err != nil || !marked {
		t.Fatalf("mark n2: %v %v", marked, err)
	}
	now = now.Add(time.Hour)
	if got := names(w.check(n.view.Snapshot())); !slices.Equal(got, []string{"slow"}) {
		t.Errorf("judged %v, want slow only (n2 is already down)", got)
	}
	leader.Store(false)
	if got := w.check(n.view.Snapshot()); got != nil {
		t.Errorf("after losing leadership judged %v", names(got))
	}
}

// WatchNodes end to end over a real log: a peer that stops heartbeating
// has its instances leave the endpoints after the grace; beating again
// brings them back.
func TestSilentNodeLosesItsEndpointsUntilItBeats(t *testing.T) {
	n := newClusterNode(t)
	n.ctl.opts.Now = time.Now
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cast(t, n, svcYAML("api", "default", ""))
	registerNode(t, n, NodeSpec{Name: "n1"})
	const beatEvery = 20 * time.Millisecond
	registerNode(t, n, NodeSpec{Name: "n2", HeartbeatEvery: beatEvery})
	for i, node := range []string{"n1", "n2"} {
		in := Instance{ID: "api-" + node, Service: "api", Namespace: "default", Node: node, IP: netip.AddrFrom4([4]byte{10, 88, byte(i), 2}), Ready: true}
		if _, err := n.ctl.RegisterInstance(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	const grace = time.Second
	before := testutil.ToFloat64(nodesMarkedDown)
	go n.ctl.WatchNodes(ctx, NodeWatchOptions{Self: "n1", Grace: grace, IsLeader: func() bool { return true }})
	beating := make(chan struct{})
	beat := func(stop <-chan struct{}) {
		for {
			select {
			case <-stop:
				return
			case <-time.After(beatEvery):
				n.ctl.Heartbeat(ctx, "n2")
			}
		}
	}
	go beat(beating)
	endpointsAre := func(want ...string) func() bool {
		return func() bool {
			ep, _ := n.view.Snapshot().Endpoints(NamespacedName{"default", "api"})
			var got []string
			for _, a := range ep.Value.Addresses {
				got = append(got, a.Instance)
			}
			return slices.Equal(got, want)
		}
	}
	// Beating, n2 keeps its endpoint for several graces.
	deadline := time.Now().Add(2 * grace)
	for time.Now().Before(deadline) {
		if !endpointsAre("api-n1", "api-n2")() {
			t.Fatal("n2 lost its endpoint while heartbeating")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition that must hold throughout
	}
	stopped := time.Now()
	close(beating)
	waitUntil(t, 5*time.Second, "n2's instance to leave the endpoints", endpointsAre("api-n1"))
	// The grace runs from the last beat, up to a beat period before stopped.
	if took := time.Since(stopped); took < grace-beatEvery {
		t.Errorf("n2 was marked down %s after its beats stopped, before the %s grace", took, grace)
	}
	// The watcher counts the mark-down once its write returns, which can be
	// after the View has already applied it.
	waitUntil(t, 5*time.Second, "the mark-down to be counted", func() bool {
		return testutil.ToFloat64(nodesMarkedDown)-before >= 1
	})
	if got := testutil.ToFloat64(nodesMarkedDown) - before; got != 1 {
		t.Errorf("rune_nodes_marked_down_total moved by %v, want 1", got)
	}
	go beat(ctx.Done())
	waitUntil(t, 5*time.Second, "n2's instance to come back once it beats", endpointsAre("api-n1", "api-n2"))
}

func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
