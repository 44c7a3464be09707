package badger

import (
	"context"
	"testing"
	"time"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/logtest"
)

// What the conformance suite cannot see: compaction physically removes the
// entries, and the floor survives a reopen.
func TestCompactionPersists(t *testing.T) {
	dir := t.TempDir()
	opts := Options{KeepEntries: -1, RecentBatches: 8}
	l := openTestLog(t, dir, opts)
	ctx := context.Background()
	logtest.ProposeVaried(t, l, 50)
	if err := l.Compact(ctx, 30); err != nil {
		t.Fatal(err)
	}
	logtest.CheckContiguous(t, logSeqs(t, l), 31, 50)

	l.Close()
	l = openTestLog(t, dir, opts)
	logtest.ExpectCompacted(t, l, 30)
	ch, _ := l.Watch(ctx, 31)
	logtest.Collect(t, ch, 31, 50, 5*time.Second)

	// Compacting everything must not lose the tail across a reopen.
	if err := l.Compact(ctx, 50); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openTestLog(t, dir, opts)
	if l.Tail() != 50 {
		t.Fatalf("tail after full compaction + reopen = %d, want 50", l.Tail())
	}
	if seq := logtest.MustPropose(t, l, orderedlog.Put("services/z", nil)); seq != 51 {
		t.Fatalf("seq after full compaction = %d, want 51", seq)
	}
}

func TestAutoCompaction(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{KeepEntries: 20})
	for i := range 100 {
		logtest.MustPropose(t, l, orderedlog.Put("services/a", logtest.Val("%d", i)))
	}
	deadline := time.Now().Add(5 * time.Second)
	for l.Tail()-l.floor.Load() > 22 {
		if time.Now().After(deadline) {
			t.Fatalf("auto-compaction did not run: tail %d floor %d", l.Tail(), l.floor.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	floor := l.floor.Load()
	logtest.CheckContiguous(t, logSeqs(t, l), floor+1, 100)
	logtest.ExpectCompacted(t, l, 1)
}
