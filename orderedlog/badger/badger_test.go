package badger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/internal/codec"
	"github.com/runenet/runenet/orderedlog/logtest"
)

func TestGetListReflectSeq(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{})
	ctx := context.Background()

	if _, found, seq, err := l.Get(ctx, "services/a"); err != nil || found || seq != 0 {
		t.Fatalf("Get on empty log = found %v seq %d err %v, want absent at seq 0", found, seq, err)
	}
	s1 := mustPropose(t, l, orderedlog.Put("services/b", val("b1")), orderedlog.Put("services/a", val("a1")), orderedlog.Put("network/cidr", val("10.96.0.0/16")))
	s2 := mustPropose(t, l, orderedlog.Put("services/b", val("b2")), orderedlog.Put("services/c", nil))
	if s1 != 1 || s2 != 2 {
		t.Fatalf("seqs = %d, %d; want 1, 2", s1, s2)
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
	if !logtest.SameKVs(kvs, want) {
		t.Fatalf("List(services/) = %v, want %v", kvs, want)
	}
	all, _, _ := l.List(ctx, "")
	if len(all) != 4 || all[0].Key != "network/cidr" {
		t.Fatalf("List(\"\") = %v, want network/cidr then the 3 services", all)
	}
	if none, _, _ := l.List(ctx, "policy/"); len(none) != 0 {
		t.Fatalf("List(policy/) = %v, want nothing", none)
	}

	s3 := mustPropose(t, l, orderedlog.Delete("services/a"))
	if _, found, seq, _ := l.Get(ctx, "services/a"); found || seq != s3 {
		t.Fatalf("deleted key still found (seq %d)", seq)
	}
	// A deleted key is absent again, so an allocation may take it.
	mustPropose(t, l, orderedlog.PutIf("services/a", val("a2"), 0))
}

func TestCompareAndSet(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{})
	ctx := context.Background()

	vip := mustPropose(t, l, orderedlog.PutIf("network/vips/api", val("10.96.0.2"), 0))
	_, err := l.Propose(ctx, []orderedlog.Op{orderedlog.PutIf("network/vips/api", val("10.96.0.3"), 0)})
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
	_, err = l.Propose(ctx, []orderedlog.Op{orderedlog.Put("endpoints/api/1", val("x")), orderedlog.Delete("network/vips/api"), orderedlog.DeleteIf("network/vips/api", vip+7)})
	if !errors.Is(err, orderedlog.ErrConflict) || errors.As(err, &ce) && ce.BatchOpIdx != 2 {
		t.Fatalf("err = %v, want conflict at op 2", err)
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
	if seq := mustPropose(t, l, orderedlog.Put("endpoints/api/2", val("y"))); seq != tail+1 {
		t.Fatalf("seq after rejected batch = %d, want %d", seq, tail+1)
	}

	// Check guards a key without writing it.
	seq := mustPropose(t, l, orderedlog.Check("network/vips/api", vip), orderedlog.Put("endpoints/api/3", val("z")))
	if kv, _, _, _ := l.Get(ctx, "network/vips/api"); kv.Rev != vip {
		t.Fatalf("Check changed the checked key's rev to %d", kv.Rev)
	}
	if _, err := l.Propose(ctx, []orderedlog.Op{orderedlog.Check("endpoints/api/3", seq-1), orderedlog.Put("endpoints/api/4", nil)}); !errors.Is(err, orderedlog.ErrConflict) {
		t.Fatalf("stale Check err = %v, want ErrConflict", err)
	}

	// Preconditions see the state before the batch, not the batch's own ops.
	if _, err := l.Propose(ctx, []orderedlog.Op{orderedlog.Put("policy/p", val("1")), orderedlog.PutIf("policy/p", val("2"), 0)}); err != nil {
		t.Fatalf("precondition should be judged before the batch: %v", err)
	}
	if kv, _, _, _ := l.Get(ctx, "policy/p"); string(kv.Value) != "2" {
		t.Fatalf("later op on the same key should win, got %q", kv.Value)
	}
	cur, _, _, _ := l.Get(ctx, "policy/p")
	mustPropose(t, l, orderedlog.DeleteIf("policy/p", cur.Rev))
	if _, found, _, _ := l.Get(ctx, "policy/p"); found {
		t.Fatal("DeleteIf with the right rev did not delete")
	}
}

func TestInvalidBatches(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{})
	for _, ops := range [][]orderedlog.Op{
		nil,
		{orderedlog.Put("", val("x"))},
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

// User keys may contain any byte, including the ones internal keys start
// with; none of them may disturb metadata or the log.
func TestUserKeysCannotReachInternalKeys(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{})
	keys := []string{string(metaTail), string(metaFloor), "\x02\x00\x00\x00\x00\x00\x00\x00\x01", "\x01x", "\xff"}
	for _, k := range keys {
		mustPropose(t, l, orderedlog.Put(k, val("user")))
	}
	all, seq, err := l.List(context.Background(), "")
	if err != nil || seq != uint64(len(keys)) || len(all) != len(keys) {
		t.Fatalf("List(\"\") = %d keys at seq %d (err %v), want %d keys at seq %d", len(all), seq, err, len(keys), len(keys))
	}
	l.Close()
	l = openTestLog(t, dir, Options{})
	if l.Tail() != uint64(len(keys)) {
		t.Fatalf("tail after reopen = %d, want %d", l.Tail(), len(keys))
	}
	checkContiguous(t, logSeqs(t, l), 1, uint64(len(keys)))
}

func TestReopenRecoversState(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{})
	var want [][]orderedlog.Op
	for i := range 30 {
		ops := []orderedlog.Op{orderedlog.Put(fmt.Sprintf("endpoints/s%d", i%4), val("v%d", i))}
		if i%3 == 0 {
			ops = append(ops, orderedlog.Delete(fmt.Sprintf("endpoints/s%d", (i+1)%4)))
		}
		mustPropose(t, l, ops...)
		want = append(want, ops)
	}
	before, _, _ := l.List(context.Background(), "")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openTestLog(t, dir, Options{})
	if l.Tail() != 30 {
		t.Fatalf("tail after reopen = %d, want 30", l.Tail())
	}
	after, seq, _ := l.List(context.Background(), "")
	if seq != 30 || !logtest.SameKVs(before, after) {
		t.Fatalf("state after reopen (seq %d) = %v, want %v", seq, after, before)
	}
	ch, err := l.Watch(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range collect(t, ch, 1, 30, 5*time.Second) {
		if !logtest.SameOps(b.Ops, want[i]) || b.Time.IsZero() {
			t.Fatalf("batch %d after reopen = %v at %v, want %v", b.Seq, b.Ops, b.Time, want[i])
		}
	}
	if seq := mustPropose(t, l, orderedlog.Put("services/x", nil)); seq != 31 {
		t.Fatalf("first seq after reopen = %d, want 31", seq)
	}
}

// A caller reusing its value buffer after Propose must not change what
// watchers see.
func TestCommittedBatchIsImmutable(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{})
	ch, _ := l.Watch(context.Background(), 1)
	buf := []byte("first")
	mustPropose(t, l, orderedlog.Put("services/a", buf))
	copy(buf, "XXXXX")
	if b := collect(t, ch, 1, 1, 5*time.Second)[0]; string(b.Ops[0].Value) != "first" {
		t.Fatalf("watcher saw %q, want %q", b.Ops[0].Value, "first")
	}
}

func TestConcurrentProposalsGetDistinctContiguousSeqs(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{})
	const workers, each = 16, 40
	var (
		mu   sync.Mutex
		seqs []uint64
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				seq, err := l.Propose(context.Background(), []orderedlog.Op{orderedlog.Put(fmt.Sprintf("endpoints/w%d/%d", w, i), val("x"))})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seqs = append(seqs, seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(seqs)
	checkContiguous(t, seqs, 1, workers*each)
	checkContiguous(t, logSeqs(t, l), 1, workers*each)
}

// Drives the committer directly so the batches are guaranteed to share one
// group: each must see the ones before it, and a conflicting one is dropped
// alone without consuming a seq.
func TestGroupCommitAppliesInOrder(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{})
	group := []*proposal{
		newProposal([]orderedlog.Op{orderedlog.PutIf("network/vips/a", val("1"), 0)}),
		newProposal([]orderedlog.Op{orderedlog.PutIf("network/vips/a", val("2"), 0)}), // sees the first: conflict
		newProposal([]orderedlog.Op{orderedlog.PutIf("network/vips/a", val("3"), 1), orderedlog.Put("services/x", nil)}),
		newProposal([]orderedlog.Op{orderedlog.Check("services/x", 2), orderedlog.Put("services/y", nil)}),
	}
	l.commitGroup(group)
	wantSeq := []uint64{1, 0, 2, 3}
	for i, p := range group {
		if p.seq != wantSeq[i] {
			t.Errorf("proposal %d seq = %d (err %v), want %d", i, p.seq, p.err, wantSeq[i])
		}
	}
	var ce *orderedlog.ConflictError
	if !errors.As(group[1].err, &ce) || ce.ActualRev != 1 {
		t.Fatalf("proposal 1 err = %v, want conflict with actual rev 1", group[1].err)
	}
	if kv, _, seq, _ := l.Get(context.Background(), "network/vips/a"); string(kv.Value) != "3" || kv.Rev != 2 || seq != 3 {
		t.Fatalf("network/vips/a = %+v at seq %d, want 3 at rev 2, seq 3", kv, seq)
	}
	checkContiguous(t, logSeqs(t, l), 1, 3)
}

func newProposal(ops []orderedlog.Op) *proposal {
	p := &proposal{ops: ops, done: make(chan struct{})}
	p.enc, p.own = codec.Encode(ops)
	return p
}

// A group too big for one Badger transaction is split without losing order
// or atomicity; one batch too big on its own is refused.
func TestGroupSplitsWhenTransactionTooBig(t *testing.T) {
	dir := t.TempDir()
	// A 1 MiB memtable caps a transaction at ~150 KiB / ~1600 entries.
	l := openTestLog(t, dir, Options{MemTableSize: 1 << 20})
	bulk := func(tag string, n int) []orderedlog.Op {
		ops := make([]orderedlog.Op, n)
		for i := range ops {
			ops[i] = orderedlog.Put(fmt.Sprintf("endpoints/%s/%04d", tag, i), val("%s-%d", tag, i))
		}
		return ops
	}
	group := []*proposal{
		newProposal(bulk("a", 600)),
		newProposal(bulk("b", 600)),
		newProposal(append(bulk("c", 600), orderedlog.PutIf("network/vips/v", val("c"), 0))),
		newProposal([]orderedlog.Op{orderedlog.PutIf("network/vips/v", val("d"), 0)}), // must see c, across the split
		newProposal(bulk("huge", 5000)),
		newProposal(append(bulk("e", 600), orderedlog.Check("network/vips/v", 3))),
	}
	l.commitGroup(group)
	wantSeq := []uint64{1, 2, 3, 0, 0, 4}
	for i, p := range group {
		if p.seq != wantSeq[i] {
			t.Errorf("proposal %d seq = %d (err %v), want %d", i, p.seq, p.err, wantSeq[i])
		}
	}
	if !errors.Is(group[3].err, orderedlog.ErrConflict) {
		t.Errorf("proposal 3 err = %v, want ErrConflict", group[3].err)
	}
	if !errors.Is(group[4].err, ErrBatchTooLarge) {
		t.Errorf("proposal 4 err = %v, want ErrBatchTooLarge", group[4].err)
	}
	if kvs, _, _ := l.List(context.Background(), "endpoints/huge/"); len(kvs) != 0 {
		t.Fatalf("refused batch left %d keys behind", len(kvs))
	}
	for _, tag := range []string{"a", "b", "c", "e"} {
		if kvs, _, _ := l.List(context.Background(), "endpoints/"+tag+"/"); len(kvs) != 600 {
			t.Fatalf("batch %s applied %d of 600 ops", tag, len(kvs))
		}
	}
	l.Close()
	l = openTestLog(t, dir, Options{MemTableSize: 1 << 20})
	if l.Tail() != 4 {
		t.Fatalf("tail after reopen = %d, want 4", l.Tail())
	}
}

func TestCanceledProposeAppliesNothing(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Propose(ctx, []orderedlog.Op{orderedlog.Put("services/a", nil)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if l.Tail() != 0 {
		t.Fatal("canceled proposal was committed")
	}
}

func TestClosedLogRefusesWork(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{})
	mustPropose(t, l, orderedlog.Put("services/a", nil))
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

// Badger creates a value-log and a memtable file on every open; a crash
// before it sizes them leaves empty files that must not brick the node.
func TestOpenAfterCrashDuringOpen(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{})
	mustPropose(t, l, orderedlog.Put("network/vips/a", val("10.96.0.2")))
	l.Close()
	for _, name := range []string{"000099.vlog", "00099.mem"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l = openTestLog(t, dir, Options{})
	if kv, found, seq, err := l.Get(context.Background(), "network/vips/a"); err != nil || !found || string(kv.Value) != "10.96.0.2" || seq != 1 {
		t.Fatalf("after reopen: %+v found %v seq %d err %v", kv, found, seq, err)
	}
	if seq := mustPropose(t, l, orderedlog.Put("services/a", nil)); seq != 2 {
		t.Fatalf("seq = %d, want 2", seq)
	}
}
