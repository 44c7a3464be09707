package raft

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/internal/codec"
	"github.com/runenet/runenet/orderedlog/logtest"
)

// sameEverywhere fails unless every live node has applied the same batches
// (from seq 1, compared op by op) and holds the same state.
func (c *TestCluster) sameEverywhere(t *testing.T) {
	t.Helper()
	var ref []orderedlog.KV
	var refBatches []*orderedlog.Batch
	tail := c.appliedOnLeader(t)
	for i, l := range c.nodes {
		if l == nil || l.isClosed() {
			continue
		}
		c.WaitSeq(i, tail)
		kvs, seq, err := l.List(context.Background(), "")
		if err != nil || seq != tail {
			t.Fatalf("%s: List at seq %d (err %v), want %d", nodeID(i), seq, err, tail)
		}
		ch, err := l.Watch(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		batches := logtest.Collect(t, ch, 1, tail, 20*time.Second)
		if ref == nil {
			ref, refBatches = kvs, batches
			continue
		}
		if !logtest.SameKVs(kvs, ref) {
			t.Fatalf("%s's state differs from the first node's", nodeID(i))
		}
		for j, b := range batches {
			if !logtest.SameOps(b.Ops, refBatches[j].Ops) || !b.Time.Equal(refBatches[j].Time) {
				t.Fatalf("%s's batch %d differs: %v at %v, want %v at %v", nodeID(i), b.Seq, b.Ops, b.Time, refBatches[j].Ops, refBatches[j].Time)
			}
		}
	}
}

// A retry of a request the state machine already applied gets the first
// outcome back and applies nothing, also after the window went through a
// snapshot and a restart.
func TestRetriedRequestAppliesOnce(t *testing.T) {
	c := NewTestCluster(t, 1, TestOptions())
	l := c.nodes[0]
	enc, _ := codec.Encode([]orderedlog.Op{orderedlog.Put("services/a", logtest.Val("1"))})
	cmd := encodeCommand(newRequestID(), enc)
	first, err := l.applyAsLeader(cmd, 5*time.Second)
	if err != nil || first.seq != 1 {
		t.Fatalf("first apply = %+v, %v; want seq 1", first, err)
	}
	conflicting := encodeCommand(newRequestID(), mustEncode(orderedlog.PutIf("services/a", nil, 0)))
	if o, err := l.applyAsLeader(conflicting, 5*time.Second); err != nil || o.conflict == nil {
		t.Fatalf("conflicting apply = %+v, %v; want a conflict", o, err)
	}
	logtest.MustPropose(t, l, orderedlog.Put("services/b", nil))

	again, err := l.applyAsLeader(cmd, 5*time.Second)
	if err != nil || again.seq != 1 || l.Tail() != 2 {
		t.Fatalf("retry = %+v, %v, tail %d; want the first outcome (seq 1) and tail 2", again, err, l.Tail())
	}
	if o, err := l.applyAsLeader(conflicting, 5*time.Second); err != nil || o.conflict == nil || o.conflict.ActualRev != 1 {
		t.Fatalf("retried conflict = %+v, %v; want the first conflict back", o, err)
	}

	if err := l.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	c.Stop(0)
	l = c.Start(0, false)
	c.WaitLeader()
	c.WaitSeq(0, 2)
	if again, err := l.applyAsLeader(cmd, 5*time.Second); err != nil || again.seq != 1 || l.Tail() != 2 {
		t.Fatalf("retry after snapshot and restart = %+v, %v, tail %d; want seq 1, tail 2", again, err, l.Tail())
	}
}

func mustEncode(ops ...orderedlog.Op) []byte {
	enc, _ := codec.Encode(ops)
	return enc
}

// The window forgets the oldest requests, the same ones on every node.
func TestDedupWindowForgetsOldest(t *testing.T) {
	opts := TestOptions()
	opts.DedupWindow = 4
	c := NewTestCluster(t, 1, opts)
	l := c.nodes[0]
	cmds := make([][]byte, 6)
	for i := range cmds {
		cmds[i] = encodeCommand(newRequestID(), mustEncode(orderedlog.Put(fmt.Sprintf("services/%d", i), nil)))
		if _, err := l.applyAsLeader(cmds[i], 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if st := l.fsm.applied(); st.kept != 4 || st.ids.Len() != 4 || st.order.Len() != 4 {
		t.Fatalf("window holds %d/%d/%d requests, want 4", st.kept, st.ids.Len(), st.order.Len())
	}
	if o, _ := l.applyAsLeader(cmds[5], 5*time.Second); o.seq != 6 {
		t.Fatalf("recent retry = seq %d, want 6 (remembered)", o.seq)
	}
	if o, _ := l.applyAsLeader(cmds[0], 5*time.Second); o.seq != 7 {
		t.Fatalf("retry of a forgotten request = seq %d, want a new seq 7", o.seq)
	}
}

// Writes from every node while leaders are killed and restarted: every
// acknowledged write is applied exactly once, seqs stay gapless, and all
// nodes end identical.
func TestWritesSurviveLeaderRestarts(t *testing.T) {
	c := NewTestCluster(t, 3, TestOptions())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu    sync.Mutex
		acked = map[uint64]string{} // seq → key written
		wg    sync.WaitGroup
	)
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := 0; ctx.Err() == nil; i++ {
				mu.Lock()
				n := c.nodes[rng.IntN(len(c.nodes))]
				mu.Unlock()
				key := fmt.Sprintf("endpoints/w%d/%d", w, i)
				seq, err := n.Propose(ctx, []orderedlog.Op{orderedlog.PutIf(key, logtest.Val("%d", i), 0)})
				switch {
				case err == nil:
					mu.Lock()
					if prev, dup := acked[seq]; dup {
						t.Errorf("seq %d acknowledged for %s and %s", seq, prev, key)
					}
					acked[seq] = key
					mu.Unlock()
				case errors.Is(err, orderedlog.ErrConflict):
					// A retry after a lost answer must get the first outcome, never a conflict with itself.
					t.Errorf("%s: %v", key, err)
				}
			}
		})
	}
	for range 4 {
		time.Sleep(300 * time.Millisecond) // let writes flow; not a synchronization
		mu.Lock()
		lead := c.WaitLeader()
		c.Stop(lead)
		c.Start(lead, false)
		mu.Unlock()
	}
	time.Sleep(300 * time.Millisecond) // writes under the last leader; not a synchronization
	cancel()
	wg.Wait()
	if len(acked) < 20 {
		t.Fatalf("only %d writes acknowledged", len(acked))
	}
	c.sameEverywhere(t)
	l := c.Leader()
	for seq, key := range acked {
		kv, found, _, _ := l.Get(context.Background(), key)
		if !found || kv.Rev != seq {
			t.Fatalf("acknowledged %s at seq %d: found %v at rev %d", key, seq, found, kv.Rev)
		}
	}
	t.Logf("%d writes acknowledged, tail %d", len(acked), l.Tail())
}

// A node cut off from the majority refuses writes with a clear error and
// its heartbeats report the growing time since it heard a leader; on heal
// it catches up and the time drops again.
func TestPartitionedFollower(t *testing.T) {
	opts := TestOptions()
	opts.RetryWindow = time.Second
	c := NewTestCluster(t, 3, opts)
	lead := c.WaitLeader()
	cut := (lead + 1) % 3
	n := c.nodes[cut]
	ch, err := n.Watch(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	c.Isolate(cut)
	_, err = n.Propose(context.Background(), []orderedlog.Op{orderedlog.Put("services/a", nil)})
	if !errors.Is(err, orderedlog.ErrUnavailable) && !errors.Is(err, orderedlog.ErrOutcomeUnknown) {
		t.Fatalf("write on a cut-off follower: %v, want ErrUnavailable or ErrOutcomeUnknown", err)
	}
	waitContact(t, ch, func(d time.Duration) bool { return d > time.Second }, "grow past 1s")
	seq := logtest.MustPropose(t, c.nodes[lead], orderedlog.Put("services/b", nil))

	c.Heal(cut)
	c.WaitSeq(cut, seq)
	waitContact(t, ch, func(d time.Duration) bool { return d < 500*time.Millisecond }, "drop below 500ms")
	c.sameEverywhere(t)
}

// waitContact reads ch until a heartbeat's SinceLeader satisfies ok.
func waitContact(t *testing.T, ch <-chan orderedlog.Event, ok func(time.Duration) bool, want string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	var last time.Duration
	for {
		select {
		case ev, open := <-ch:
			if !open || ev.Err != nil {
				t.Fatalf("watch ended: %v", ev.Err)
			}
			if ev.Batch == nil {
				if last = ev.SinceLeader; ok(last) {
					return
				}
			}
		case <-timeout:
			t.Fatalf("SinceLeader did not %s (last %v)", want, last)
		}
	}
}

// A leader cut off from the majority cannot know whether a write it took
// will commit: Propose says the outcome is unknown, and after the heal the
// cluster agrees on one history.
func TestPartitionedLeaderOutcomeUnknown(t *testing.T) {
	opts := TestOptions()
	opts.RetryWindow = 2 * time.Second
	c := NewTestCluster(t, 3, opts)
	lead := c.WaitLeader()
	logtest.MustPropose(t, c.nodes[lead], orderedlog.Put("services/a", nil))
	c.Isolate(lead)
	_, err := c.nodes[lead].Propose(context.Background(), []orderedlog.Op{orderedlog.Put("services/lost", nil)})
	if !errors.Is(err, orderedlog.ErrOutcomeUnknown) {
		t.Fatalf("write on a cut-off leader: %v, want ErrOutcomeUnknown", err)
	}
	c.Heal(lead)
	c.WaitLeader()
	logtest.MustPropose(t, c.Leader(), orderedlog.Put("services/c", nil))
	c.sameEverywhere(t)
}

// A follower that missed more than the trailing logs catches up from a
// snapshot while writes continue; history before the snapshot is gone on it
// (a watcher from there gets ErrCompacted and re-lists), and its state is
// the leader's.
func TestFollowerCatchesUpFromSnapshot(t *testing.T) {
	opts := TestOptions()
	opts.SnapshotThreshold = 50
	opts.TrailingLogs = 10
	c := NewTestCluster(t, 3, opts)
	lead := c.WaitLeader()
	behind := (lead + 1) % 3
	c.Stop(behind)
	for i := range 300 {
		logtest.MustPropose(t, c.nodes[lead], orderedlog.Put(fmt.Sprintf("endpoints/%d", i%40), logtest.Val("%d", i)))
	}
	if err := c.nodes[lead].raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			c.nodes[lead].Propose(ctx, []orderedlog.Op{orderedlog.Put("services/during", logtest.Val("%d", i))})
		}
	})
	n := c.Start(behind, false)
	c.WaitSeq(behind, 300)
	cancel()
	wg.Wait()
	logtest.ExpectCompacted(t, n, 1)
	c.sameEverywhereFrom(t, n.fsm.floor.Load()+1)
}

// sameEverywhereFrom is sameEverywhere for nodes whose history starts at
// from (restored from a snapshot): state and the batches from there on.
func (c *TestCluster) sameEverywhereFrom(t *testing.T, from uint64) {
	t.Helper()
	tail := c.appliedOnLeader(t)
	var ref []orderedlog.KV
	for i, l := range c.nodes {
		c.WaitSeq(i, tail)
		kvs, seq, err := l.List(context.Background(), "")
		if err != nil || seq != tail {
			t.Fatalf("%s: List at seq %d (err %v), want %d", nodeID(i), seq, err, tail)
		}
		if ref == nil {
			ref = kvs
		} else if !logtest.SameKVs(kvs, ref) {
			t.Fatalf("%s's state differs from the first node's", nodeID(i))
		}
		if from <= tail {
			ch, _ := l.Watch(context.Background(), from)
			logtest.Collect(t, ch, from, tail, 20*time.Second)
		}
	}
}

// appliedOnLeader waits until the leader has applied everything committed
// (a restarted leader replays its log only once it commits in its term) and
// returns its seq.
func (c *TestCluster) appliedOnLeader(t *testing.T) uint64 {
	t.Helper()
	l := c.Leader()
	if err := l.raft.Barrier(20 * time.Second).Error(); err != nil {
		t.Fatalf("barrier on the leader: %v", err)
	}
	return l.Tail()
}

// A read after Sync on a follower sees every write acknowledged before it,
// though the follower applies the leader's commits a little later; a node
// cut off from the majority cannot Sync.
func TestSyncIsALinearizableReadPoint(t *testing.T) {
	opts := TestOptions()
	opts.RetryWindow = time.Second
	c := NewTestCluster(t, 3, opts)
	lead := c.WaitLeader()
	f := (lead + 1) % 3
	ctx := context.Background()
	for i := range 30 {
		key := fmt.Sprintf("services/s%d", i)
		seq := logtest.MustPropose(t, c.Node(lead), orderedlog.Put(key, nil))
		synced, err := c.Node(f).Sync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, found, at, _ := c.Node(f).Get(ctx, key); !found || synced < seq || at < seq {
			t.Fatalf("after Sync (seq %d) the follower reads %s found %v at seq %d; it was acknowledged at %d", synced, key, found, at, seq)
		}
	}
	c.Isolate(f)
	if _, err := c.Node(f).Sync(ctx); !errors.Is(err, orderedlog.ErrUnavailable) {
		t.Fatalf("Sync on a cut-off node: %v, want ErrUnavailable", err)
	}
}
