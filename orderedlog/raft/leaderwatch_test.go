package raft

import (
	"context"
	"testing"
	"time"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/logtest"
)

// A write through a follower while the leader's network is cut (its
// packets dropped, so a forward to it hangs) goes to the leader elected
// meanwhile within seconds, not after the whole retry window, and applies
// once.
func TestWriteThroughFollowerWhenLeaderCut(t *testing.T) {
	opts := TestOptions()
	opts.RetryWindow = 20 * time.Second
	c := NewTestCluster(t, 3, opts)
	lead := c.WaitLeader()
	f := (lead + 1) % 3
	before := logtest.MustPropose(t, c.Node(f), orderedlog.Put("services/a", nil)) // a pooled path to the leader
	c.Isolate(lead)
	defer c.Heal(lead)
	start := time.Now()
	seq, err := c.Node(f).Propose(context.Background(), []orderedlog.Op{orderedlog.Put("services/b", nil)})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("write through a follower after the leader was cut: %v (after %v)", err, took)
	}
	// Election: 0.5-1s of heartbeat timeout, then a vote; on a loaded
	// machine a few rounds. The retry window is 20s.
	if took > 5*time.Second {
		t.Fatalf("write through a follower took %v with a new leader elected; want a few seconds", took)
	}
	if seq != before+1 {
		t.Fatalf("the write applied at seq %d, want %d: once, right after the first", seq, before+1)
	}
	t.Logf("write through a follower after the leader was cut: %v", took)
}
