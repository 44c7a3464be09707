// Package raftbench measures the replicated OrderedLog (three in-process
// nodes over the real mutual-TLS transport on loopback, default timeouts)
// side by side with the single-node Badger backend, in one run:
//
//	go test ./bench/raft -run '^$' -bench . -benchtime 2000x
//
// docs/benchmarks.md records the figures and the exact commands.
package raftbench

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/badger"
	"github.com/runenet/runenet/orderedlog/raft"
)

// writeOps is one typical write: an endpoint-sized record (~150 bytes)
// under its own key.
func writeOps(i int64) []orderedlog.Op {
	return []orderedlog.Op{orderedlog.Put(fmt.Sprintf("bench/svc%d/inst%d", i%1000, i),
		fmt.Appendf(nil, `{"ip":"172.17.%d.%d","port":8080,"node":"node-1","ready":true,"labels":{"app":"svc%d","tier":"backend"}}`, i/250%250, i%250, i%1000))}
}

func newBadger(b *testing.B) orderedlog.Log {
	l, err := badger.Open(b.TempDir(), badger.Options{Logger: raft.QuietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

// newRaft is three voters with the shipped defaults (timeouts, commit
// timeout, snapshot thresholds), each on its own loopback TLS port.
func newRaft(b *testing.B) *raft.TestCluster {
	return raft.NewTLSTestCluster(b, 3, raft.Options{Logger: raft.QuietLogger()})
}

func propose(l orderedlog.Log, i int64) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return l.Propose(ctx, writeOps(i))
}

func mustPropose(b *testing.B, l orderedlog.Log, i int64) uint64 {
	seq, err := propose(l, i)
	if err != nil {
		b.Fatal(err)
	}
	return seq
}

// proposeAll has 64 proposers, spread over nodes, propose writes 1..n.
func proposeAll(b *testing.B, nodes []orderedlog.Log, n int64) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			l := nodes[w%len(nodes)]
			for i := next.Add(1); i <= n; i = next.Add(1) {
				if _, err := propose(l, i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}

// reportPercentiles reports p50 and p99 of ds in milliseconds.
func reportPercentiles(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// One proposer's write latency: Propose until durable (and, on Raft,
// committed by a majority and applied on the proposing node). On a
// follower every write is forwarded to the leader.
func BenchmarkProposeLatency(b *testing.B) {
	run := func(b *testing.B, l orderedlog.Log) {
		ds := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := range b.N {
			start := time.Now()
			mustPropose(b, l, int64(i))
			ds = append(ds, time.Since(start))
		}
		reportPercentiles(b, ds)
	}
	b.Run("backend=badger", func(b *testing.B) { run(b, newBadger(b)) })
	b.Run("backend=raft3/on=leader", func(b *testing.B) { run(b, newRaft(b).Leader()) })
	b.Run("backend=raft3/on=follower", func(b *testing.B) { run(b, newRaft(b).Follower()) })
}

// 64 concurrent proposers' batches per second. On Raft they are spread
// over the three nodes, so two thirds of the writes are forwarded.
func BenchmarkPropose64(b *testing.B) {
	run := func(b *testing.B, nodes []orderedlog.Log) {
		b.ResetTimer()
		start := time.Now()
		proposeAll(b, nodes, int64(b.N))
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "batches/s")
	}
	b.Run("backend=badger", func(b *testing.B) { run(b, []orderedlog.Log{newBadger(b)}) })
	b.Run("backend=raft3/on=all", func(b *testing.B) {
		c := newRaft(b)
		run(b, []orderedlog.Log{c.Node(0), c.Node(1), c.Node(2)})
	})
	b.Run("backend=raft3/on=leader", func(b *testing.B) { run(b, []orderedlog.Log{newRaft(b).Leader()}) })
}

// Commit → a watcher on another node holds the batch: from the batch's
// commit timestamp (stamped by the leader as it submits, so the commit
// itself counts) to delivery on a follower's watch. One proposer on the
// leader; on Badger the watcher is on the one node.
func BenchmarkWatchDelivery(b *testing.B) {
	run := func(b *testing.B, proposer, watcher orderedlog.Log) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		events, err := watcher.Watch(ctx, 0)
		if err != nil {
			b.Fatal(err)
		}
		ds := make([]time.Duration, 0, b.N)
		got := make(chan struct{})
		go func() {
			defer close(got)
			for ev := range events {
				if ev.Batch == nil {
					continue
				}
				ds = append(ds, time.Since(ev.Batch.Time))
				if len(ds) == b.N {
					return
				}
			}
		}()
		b.ResetTimer()
		for i := range b.N {
			mustPropose(b, proposer, int64(i))
		}
		select {
		case <-got:
		case <-time.After(30 * time.Second):
			b.Fatalf("the watcher got %d of %d batches within 30s", len(ds), b.N)
		}
		reportPercentiles(b, ds)
	}
	b.Run("backend=badger", func(b *testing.B) {
		l := newBadger(b)
		run(b, l, l)
	})
	b.Run("backend=raft3", func(b *testing.B) {
		c := newRaft(b)
		run(b, c.Leader(), c.Follower())
	})
}

// The leader stops dead (Raft, its stores and its TLS listener and
// connections close with no leadership transfer, as far as a process can
// kill part of itself) → the first write acknowledged on a survivor, with
// the default timeouts. The write starts the moment the leader dies and
// rides Propose's own retries. Each iteration restarts the dead node and
// lets it catch up before the next crash. Badger has no failover: it is
// shown as a reopen after Close for scale.
func BenchmarkLeaderCrash(b *testing.B) {
	b.Run("backend=badger/reopen", func(b *testing.B) {
		dir := b.TempDir()
		ds := make([]time.Duration, 0, b.N)
		for i := range b.N {
			l, err := badger.Open(dir, badger.Options{Logger: raft.QuietLogger()})
			if err != nil {
				b.Fatal(err)
			}
			mustPropose(b, l, int64(i))
			l.Close()
			start := time.Now()
			if l, err = badger.Open(dir, badger.Options{Logger: raft.QuietLogger()}); err != nil {
				b.Fatal(err)
			}
			mustPropose(b, l, int64(i))
			ds = append(ds, time.Since(start))
			l.Close()
		}
		reportPercentiles(b, ds)
	})
	b.Run("backend=raft3", func(b *testing.B) {
		c := newRaft(b)
		ds := make([]time.Duration, 0, b.N)
		for i := range b.N {
			lead := c.WaitLeader()
			survivor := (lead + 1) % 3
			seq := mustPropose(b, c.Node(survivor), int64(i)) // the survivor knows the leader
			for n := range 3 {
				c.WaitSeq(n, seq)
			}
			start := time.Now()
			c.Stop(lead)
			seq = mustPropose(b, c.Node(survivor), int64(i))
			ds = append(ds, time.Since(start))
			c.Start(lead, false)
			c.WaitSeq(lead, seq)
		}
		reportPercentiles(b, ds)
	})
}

// A follower that was down while 100,000 writes committed restarts and
// serves the leader's exact state (every key, value and revision): the
// time from its restart to identical state. With the default snapshot
// thresholds it catches up from a snapshot plus the trailing log. Badger,
// for scale: reopening a store that holds the same 100,000 writes and
// reading it whole.
func BenchmarkFollowerCatchUp(b *testing.B) {
	const writes = 100_000
	b.Run("backend=badger/reopen", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			dir := b.TempDir()
			l, err := badger.Open(dir, badger.Options{Logger: raft.QuietLogger()})
			if err != nil {
				b.Fatal(err)
			}
			proposeAll(b, []orderedlog.Log{l}, writes)
			want := digest(b, l)
			l.Close()
			b.StartTimer()
			start := time.Now()
			if l, err = badger.Open(dir, badger.Options{Logger: raft.QuietLogger()}); err != nil {
				b.Fatal(err)
			}
			if got := digest(b, l); got != want {
				b.Fatal("the reopened store differs")
			}
			b.ReportMetric(time.Since(start).Seconds(), "s-to-identical")
			l.Close()
		}
	})
	b.Run("backend=raft3", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			c := newRaft(b)
			lead := c.WaitLeader()
			behind := (lead + 1) % 3
			c.Stop(behind)
			proposeAll(b, []orderedlog.Log{c.Node(lead), c.Node((lead + 2) % 3)}, writes)
			want := digest(b, c.Node(lead))
			target := c.Node(lead).Tail()
			b.StartTimer()
			start := time.Now()
			l := c.Start(behind, false)
			from, moved := l.Tail(), time.Duration(0)
			deadline := start.Add(2 * time.Minute)
			for l.Tail() < target || digest(b, l) != want {
				if time.Now().After(deadline) {
					b.Fatalf("the follower is at seq %d of %d after 2 minutes", l.Tail(), target)
				}
				if moved == 0 && l.Tail() > from {
					moved = time.Since(start)
				}
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(time.Since(start).Seconds(), "s-to-identical")
			b.ReportMetric(moved.Seconds(), "s-to-first-apply")
		}
	})
}

// digest hashes every key, value and revision a node serves.
func digest(b *testing.B, l orderedlog.Log) [32]byte {
	h := sha256.New()
	_, err := l.ListFunc(context.Background(), "", func(kv orderedlog.KV) error {
		fmt.Fprintf(h, "%q %d %d\n", kv.Key, kv.Rev, len(kv.Value))
		h.Write(kv.Value)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}
