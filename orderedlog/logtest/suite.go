package logtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/runenet/runenet/orderedlog"
)

// Open returns a new, empty log for one test; the suite closes it, and the
// backend cleans up whatever else it made (t.Cleanup). Its watchers must get
// heartbeats at least every 100ms, so the heartbeat checks stay fast.
type Open func(t *testing.T) orderedlog.Log

// Run holds a backend to what orderedlog.Log promises, one subtest per
// promise: atomic batches, compare-and-set, seq and revision semantics,
// watch replay and follow with heartbeats, compaction and re-listing, and
// shutdown.
func Run(t *testing.T, open Open) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, orderedlog.Log)
	}{
		{"GetListReflectSeq", testGetListReflectSeq},
		{"CompareAndSet", testCompareAndSet},
		{"CompareAndSetCounter", testCompareAndSetCounter},
		{"InvalidBatches", testInvalidBatches},
		{"CommittedBatchIsImmutable", testCommittedBatchIsImmutable},
		{"ConcurrentProposalsGetDistinctContiguousSeqs", testConcurrentProposals},
		{"CanceledProposeAppliesNothing", testCanceledPropose},
		{"WatchReplaysFromEverySeq", testWatchReplaysFromEverySeq},
		{"WatchWhileProposing", testWatchWhileProposing},
		{"WatchHeartbeatReportsTail", testWatchHeartbeatReportsTail},
		{"CompactionAndRelist", testCompactionAndRelist},
		{"SlowWatcherDoesNotBlockPropose", testSlowWatcher},
		{"WatchFromTheFutureWaits", testWatchFromTheFuture},
		{"WatchClosesOnCancelAndClose", testWatchCloses},
		{"ClosedLogRefusesWork", testClosedLogRefusesWork},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := open(t)
			t.Cleanup(func() { l.Close() })
			tc.fn(t, l)
		})
	}
}

func testGetListReflectSeq(t *testing.T, l orderedlog.Log) {
	ctx := context.Background()
	if _, found, seq, err := l.Get(ctx, "services/a"); err != nil || found || seq != 0 {
		t.Fatalf("Get on empty log = found %v seq %d err %v, want absent at seq 0", found, seq, err)
	}
	s1 := MustPropose(t, l, orderedlog.Put("services/b", Val("b1")), orderedlog.Put("services/a", Val("a1")), orderedlog.Put("network/cidr", Val("10.96.0.0/16")))
	s2 := MustPropose(t, l, orderedlog.Put("services/b", Val("b2")), orderedlog.Put("services/c", nil))
	if s1 != 1 || s2 != 2 {
		t.Fatalf("seqs = %d, %d; want 1, 2", s1, s2)
	}
	if l.Tail() != 2 {
		t.Fatalf("Tail after Propose returned 2 = %d", l.Tail())
	}

	kv, found, seq, err := l.Get(ctx, "services/b")
	if err != nil || !found || string(kv.Value) != "b2" || kv.Rev != 2 || seq != 2 {
		t.Fatalf("Get(services/b) = %+v found %v seq %d err %v; want b2 at rev 2, seq 2", kv, found, seq, err)
	}
	kv, _, _, _ = l.Get(ctx, "services/a")
	if kv.Rev != 1 {
		t.Fatalf("services/a rev = %d, want 1 (the batch that last wrote it)", kv.Rev)
	}

	kvs, seq, err := l.List(ctx, "services/")
	if err != nil || seq != 2 {
		t.Fatalf("List: seq %d err %v", seq, err)
	}
	want := []orderedlog.KV{{Key: "services/a", Value: []byte("a1"), Rev: 1}, {Key: "services/b", Value: []byte("b2"), Rev: 2}, {Key: "services/c", Value: []byte{}, Rev: 2}}
	if !SameKVs(kvs, want) {
		t.Fatalf("List(services/) = %v, want %v", kvs, want)
	}
	var streamed []orderedlog.KV
	seq, err = l.ListFunc(ctx, "services/", func(kv orderedlog.KV) error {
		kv.Value = slices.Clone(kv.Value)
		streamed = append(streamed, kv)
		return nil
	})
	if err != nil || seq != 2 || !SameKVs(streamed, want) {
		t.Fatalf("ListFunc(services/) = %v at seq %d (err %v), want %v at seq 2", streamed, seq, err, want)
	}
	stop := errors.New("stop")
	if _, err := l.ListFunc(ctx, "", func(orderedlog.KV) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("ListFunc did not return fn's error: %v", err)
	}
	all, _, _ := l.List(ctx, "")
	if len(all) != 4 || all[0].Key != "network/cidr" {
		t.Fatalf("List(\"\") = %v, want network/cidr then the 3 services", all)
	}
	if none, _, _ := l.List(ctx, "policy/"); len(none) != 0 {
		t.Fatalf("List(policy/) = %v, want nothing", none)
	}

	s3 := MustPropose(t, l, orderedlog.Delete("services/a"))
	if _, found, seq, _ := l.Get(ctx, "services/a"); found || seq != s3 {
		t.Fatalf("deleted key still found (seq %d)", seq)
	}
	// A deleted key is absent again, so an allocation may take it.
	MustPropose(t, l, orderedlog.PutIf("services/a", Val("a2"), 0))
}

func testCompareAndSet(t *testing.T, l orderedlog.Log) {
	ctx := context.Background()
	vip := MustPropose(t, l, orderedlog.PutIf("network/vips/api", Val("10.96.0.2"), 0))
	_, err := l.Propose(ctx, []orderedlog.Op{orderedlog.PutIf("network/vips/api", Val("10.96.0.3"), 0)})
	var ce *orderedlog.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, orderedlog.ErrConflict) {
		t.Fatalf("second allocation err = %v, want *ConflictError wrapping ErrConflict", err)
	}
	if ce.Key != "network/vips/api" || ce.WantRev != 0 || ce.ActualRev != vip || ce.BatchOpIdx != 0 {
		t.Fatalf("conflict = %+v, want key network/vips/api want 0 actual %d op 0", ce, vip)
	}

	// Atomicity: the failing op is last; the puts before it must not apply
	// and no seq may be consumed.
	tail := l.Tail()
	_, err = l.Propose(ctx, []orderedlog.Op{orderedlog.Put("endpoints/api/1", Val("x")), orderedlog.Delete("network/vips/api"), orderedlog.DeleteIf("network/vips/api", vip+7)})
	if !errors.As(err, &ce) || ce.BatchOpIdx != 2 {
		t.Fatalf("err = %v, want a conflict at op 2", err)
	}
	if l.Tail() != tail {
		t.Fatalf("failed batch moved tail %d → %d", tail, l.Tail())
	}
	if _, found, _, _ := l.Get(ctx, "endpoints/api/1"); found {
		t.Fatal("op of a rejected batch was applied")
	}
	if kv, found, _, _ := l.Get(ctx, "network/vips/api"); !found || string(kv.Value) != "10.96.0.2" {
		t.Fatal("delete of a rejected batch was applied")
	}
	if seq := MustPropose(t, l, orderedlog.Put("endpoints/api/2", Val("y"))); seq != tail+1 {
		t.Fatalf("seq after rejected batch = %d, want %d", seq, tail+1)
	}

	// Check guards a key without writing it.
	seq := MustPropose(t, l, orderedlog.Check("network/vips/api", vip), orderedlog.Put("endpoints/api/3", Val("z")))
	if kv, _, _, _ := l.Get(ctx, "network/vips/api"); kv.Rev != vip {
		t.Fatalf("Check changed the checked key's rev to %d", kv.Rev)
	}
	if _, err := l.Propose(ctx, []orderedlog.Op{orderedlog.Check("endpoints/api/3", seq-1), orderedlog.Put("endpoints/api/4", nil)}); !errors.Is(err, orderedlog.ErrConflict) {
		t.Fatalf("stale Check err = %v, want ErrConflict", err)
	}

	// Preconditions see the state before the batch, not the batch's own ops.
	if _, err := l.Propose(ctx, []orderedlog.Op{orderedlog.Put("policy/p", Val("1")), orderedlog.PutIf("policy/p", Val("2"), 0)}); err != nil {
		t.Fatalf("precondition should be judged before the batch: %v", err)
	}
	if kv, _, _, _ := l.Get(ctx, "policy/p"); string(kv.Value) != "2" {
		t.Fatalf("later op on the same key should win, got %q", kv.Value)
	}
	cur, _, _, _ := l.Get(ctx, "policy/p")
	MustPropose(t, l, orderedlog.DeleteIf("policy/p", cur.Rev))
	if _, found, _, _ := l.Get(ctx, "policy/p"); found {
		t.Fatal("DeleteIf with the right rev did not delete")
	}
}

// Read-modify-write through preconditions from many goroutines at once: no
// increment may be lost or applied twice, whichever node or goroutine wins.
func testCompareAndSetCounter(t *testing.T, l orderedlog.Log) {
	const workers, each = 8, 15
	const key = "services/counter"
	ctx := context.Background()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for done := 0; done < each; {
				kv, found, _, err := l.Get(ctx, key)
				if err != nil {
					t.Error(err)
					return
				}
				n := 0
				if found {
					n, _ = strconv.Atoi(string(kv.Value))
				}
				_, err = l.Propose(ctx, []orderedlog.Op{orderedlog.PutIf(key, Val("%d", n+1), kv.Rev)})
				switch {
				case err == nil:
					done++
				case !errors.Is(err, orderedlog.ErrConflict):
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	kv, _, _, _ := l.Get(ctx, key)
	if string(kv.Value) != strconv.Itoa(workers*each) || kv.Rev != l.Tail() || l.Tail() != workers*each {
		t.Fatalf("counter = %q at rev %d, tail %d; want %d increments, one seq each", kv.Value, kv.Rev, l.Tail(), workers*each)
	}
}

func testInvalidBatches(t *testing.T, l orderedlog.Log) {
	for _, ops := range [][]orderedlog.Op{
		nil,
		{orderedlog.Put("", Val("x"))},
		{{Type: orderedlog.OpCheck, Key: "a"}},
		{{Type: 9, Key: "a"}},
		{orderedlog.Put(string(make([]byte, orderedlog.MaxKeyLen+1)), nil)},
	} {
		if _, err := l.Propose(context.Background(), ops); !errors.Is(err, orderedlog.ErrInvalidBatch) {
			t.Errorf("Propose(%v) err = %v, want ErrInvalidBatch", ops, err)
		}
	}
	if l.Tail() != 0 {
		t.Fatalf("invalid batches consumed seqs: tail %d", l.Tail())
	}
}

// A caller reusing its value buffer after Propose must not change what
// watchers or readers see.
func testCommittedBatchIsImmutable(t *testing.T, l orderedlog.Log) {
	ch, _ := l.Watch(context.Background(), 1)
	buf := []byte("first")
	MustPropose(t, l, orderedlog.Put("services/a", buf))
	copy(buf, "XXXXX")
	if b := Collect(t, ch, 1, 1, watchTimeout)[0]; string(b.Ops[0].Value) != "first" {
		t.Fatalf("watcher saw %q, want %q", b.Ops[0].Value, "first")
	}
	if kv, _, _, _ := l.Get(context.Background(), "services/a"); string(kv.Value) != "first" {
		t.Fatalf("Get saw %q, want %q", kv.Value, "first")
	}
}

func testConcurrentProposals(t *testing.T, l orderedlog.Log) {
	const workers, each = 16, 25
	var (
		mu      sync.Mutex
		seqs    []uint64
		written = map[uint64][]orderedlog.Op{}
		wg      sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				ops := []orderedlog.Op{orderedlog.Put(fmt.Sprintf("endpoints/w%d/%d", w, i), Val("x"))}
				seq, err := l.Propose(context.Background(), ops)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seqs = append(seqs, seq)
				written[seq] = ops
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(seqs)
	CheckContiguous(t, seqs, 1, workers*each)
	ch, _ := l.Watch(context.Background(), 1)
	for _, b := range Collect(t, ch, 1, workers*each, watchTimeout) {
		if !SameOps(b.Ops, written[b.Seq]) {
			t.Fatalf("batch %d = %v, but its proposer got seq %d for %v", b.Seq, b.Ops, b.Seq, written[b.Seq])
		}
	}
}

func testCanceledPropose(t *testing.T, l orderedlog.Log) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Propose(ctx, []orderedlog.Op{orderedlog.Put("services/a", nil)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if l.Tail() != 0 {
		t.Fatal("canceled proposal was committed")
	}
}

func testClosedLogRefusesWork(t *testing.T, l orderedlog.Log) {
	MustPropose(t, l, orderedlog.Put("services/a", nil))
	ch, _ := l.Watch(context.Background(), 0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for range ch {
	}
	ctx := context.Background()
	if _, err := l.Propose(ctx, []orderedlog.Op{orderedlog.Put("services/b", nil)}); !errors.Is(err, orderedlog.ErrClosed) {
		t.Errorf("Propose after Close: %v", err)
	}
	if _, _, _, err := l.Get(ctx, "services/a"); !errors.Is(err, orderedlog.ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if _, _, err := l.List(ctx, ""); !errors.Is(err, orderedlog.ErrClosed) {
		t.Errorf("List after Close: %v", err)
	}
	if _, err := l.Watch(ctx, 1); !errors.Is(err, orderedlog.ErrClosed) {
		t.Errorf("Watch after Close: %v", err)
	}
	if err := l.Compact(ctx, 1); !errors.Is(err, orderedlog.ErrClosed) {
		t.Errorf("Compact after Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
