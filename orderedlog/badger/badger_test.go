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

// User keys may contain any byte, including the ones internal keys start
// with; none of them may disturb metadata or the log.
func TestUserKeysCannotReachInternalKeys(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{})
	keys := []string{string(metaTail), string(metaFloor), "\x02\x00\x00\x00\x00\x00\x00\x00\x01", "\x01x", "\xff"}
	for _, k := range keys {
		logtest.MustPropose(t, l, orderedlog.Put(k, logtest.Val("user")))
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
	logtest.CheckContiguous(t, logSeqs(t, l), 1, uint64(len(keys)))
}

func TestReopenRecoversState(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{})
	var want [][]orderedlog.Op
	for i := range 30 {
		ops := []orderedlog.Op{orderedlog.Put(fmt.Sprintf("endpoints/s%d", i%4), logtest.Val("v%d", i))}
		if i%3 == 0 {
			ops = append(ops, orderedlog.Delete(fmt.Sprintf("endpoints/s%d", (i+1)%4)))
		}
		logtest.MustPropose(t, l, ops...)
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
	for i, b := range logtest.Collect(t, ch, 1, 30, 5*time.Second) {
		if !logtest.SameOps(b.Ops, want[i]) || b.Time.IsZero() {
			t.Fatalf("batch %d after reopen = %v at %v, want %v", b.Seq, b.Ops, b.Time, want[i])
		}
	}
	if seq := logtest.MustPropose(t, l, orderedlog.Put("services/x", nil)); seq != 31 {
		t.Fatalf("first seq after reopen = %d, want 31", seq)
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
				seq, err := l.Propose(context.Background(), []orderedlog.Op{orderedlog.Put(fmt.Sprintf("endpoints/w%d/%d", w, i), logtest.Val("x"))})
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
	logtest.CheckContiguous(t, seqs, 1, workers*each)
	logtest.CheckContiguous(t, logSeqs(t, l), 1, workers*each)
}

// Drives the committer directly so the batches are guaranteed to share one
// group: each must see the ones before it, and a conflicting one is dropped
// alone without consuming a seq.
func TestGroupCommitAppliesInOrder(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{})
	group := []*proposal{
		newProposal([]orderedlog.Op{orderedlog.PutIf("network/vips/a", logtest.Val("1"), 0)}),
		newProposal([]orderedlog.Op{orderedlog.PutIf("network/vips/a", logtest.Val("2"), 0)}), // sees the first: conflict
		newProposal([]orderedlog.Op{orderedlog.PutIf("network/vips/a", logtest.Val("3"), 1), orderedlog.Put("services/x", nil)}),
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
	logtest.CheckContiguous(t, logSeqs(t, l), 1, 3)
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
			ops[i] = orderedlog.Put(fmt.Sprintf("endpoints/%s/%04d", tag, i), logtest.Val("%s-%d", tag, i))
		}
		return ops
	}
	group := []*proposal{
		newProposal(bulk("a", 600)),
		newProposal(bulk("b", 600)),
		newProposal(append(bulk("c", 600), orderedlog.PutIf("network/vips/v", logtest.Val("c"), 0))),
		newProposal([]orderedlog.Op{orderedlog.PutIf("network/vips/v", logtest.Val("d"), 0)}), // must see c, across the split
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

// Badger creates a value-log and a memtable file on every open; a crash
// before it sizes them leaves empty files that must not brick the node.
func TestOpenAfterCrashDuringOpen(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{})
	logtest.MustPropose(t, l, orderedlog.Put("network/vips/a", logtest.Val("10.96.0.2")))
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
	if seq := logtest.MustPropose(t, l, orderedlog.Put("services/a", nil)); seq != 2 {
		t.Fatalf("seq = %d, want 2", seq)
	}
}
