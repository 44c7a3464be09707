package badger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/logtest"
)

// proposeVaried writes n batches of mixed shapes and returns their ops by
// seq (index 0 unused).
func proposeVaried(t *testing.T, l orderedlog.Log, n int) [][]orderedlog.Op {
	t.Helper()
	want := make([][]orderedlog.Op, 1, n+1)
	for i := 1; i <= n; i++ {
		ops := []orderedlog.Op{orderedlog.Put(fmt.Sprintf("endpoints/s%d/%d", i%7, i%3), val("%d-%s", i, make([]byte, i%50)))}
		switch i % 4 {
		case 1:
			ops = append(ops, orderedlog.Delete(fmt.Sprintf("endpoints/s%d/%d", (i+1)%7, 0)))
		case 2:
			ops = append(ops, orderedlog.PutIf(fmt.Sprintf("network/vips/v%d", i), val("10.96.0.%d", i%250), 0))
		case 3:
			ops = append(ops, orderedlog.Check("services/absent", 0), orderedlog.Put("services/counter", val("%d", i)))
		}
		if seq := mustPropose(t, l, ops...); seq != uint64(i) {
			t.Fatalf("seq = %d, want %d", seq, i)
		}
		want = append(want, ops)
	}
	return want
}

func TestWatchReplaysFromEverySeq(t *testing.T) {
	const n = 200
	dir := t.TempDir()
	// A ring smaller than the log makes early starts read the disk and
	// switch to the ring on the way.
	opts := Options{RecentBatches: 64, WatchBuffer: 8}
	l := openTestLog(t, dir, opts)
	want := proposeVaried(t, l, n)

	check := func(l *Log, stage string) {
		for from := uint64(1); from <= n; from++ {
			ctx, cancel := context.WithCancel(context.Background())
			ch, err := l.Watch(ctx, from)
			if err != nil {
				t.Fatal(err)
			}
			got := collect(t, ch, from, n, 10*time.Second)
			cancel()
			for _, b := range got {
				if !logtest.SameOps(b.Ops, want[b.Seq]) {
					t.Fatalf("%s: watch from %d: batch %d = %v, want %v", stage, from, b.Seq, b.Ops, want[b.Seq])
				}
			}
		}
	}
	check(l, "live")
	l.Close()
	// After a reopen the ring is empty: everything comes from disk.
	check(openTestLog(t, dir, opts), "reopened")
}

// Watchers started while proposers run must see every batch exactly once,
// whether they start in the past, at the tail, or race the committer.
func TestWatchWhileProposing(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{RecentBatches: 32, WatchBuffer: 4})
	const workers, each = 4, 150
	var (
		mu      sync.Mutex
		written = map[uint64][]orderedlog.Op{}
		wg      sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				ops := []orderedlog.Op{orderedlog.Put(fmt.Sprintf("endpoints/w%d/%d", w, i%5), val("%d.%d", w, i))}
				seq, err := l.Propose(context.Background(), ops)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				written[seq] = ops
				mu.Unlock()
			}
		})
	}

	type watcher struct {
		ch           <-chan orderedlog.Event
		firstMin     uint64 // the first seq delivered must lie in [firstMin, firstMax]
		firstMax     uint64
		slowConsumer bool
	}
	var watchers []watcher
	for i := range 12 {
		var w watcher
		switch i % 3 {
		case 0:
			before := l.Tail()
			ch, _ := l.Watch(context.Background(), 0)
			w = watcher{ch: ch, firstMin: before + 1, firstMax: l.Tail() + 1}
		case 1:
			from := l.Tail()/2 + 1
			ch, _ := l.Watch(context.Background(), from)
			w = watcher{ch: ch, firstMin: from, firstMax: from}
		case 2:
			ch, _ := l.Watch(context.Background(), 1)
			w = watcher{ch: ch, firstMin: 1, firstMax: 1, slowConsumer: true}
		}
		watchers = append(watchers, w)
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	final := l.Tail()
	if final != workers*each {
		t.Fatalf("tail = %d, want %d", final, workers*each)
	}

	var cwg sync.WaitGroup
	for i, w := range watchers {
		cwg.Go(func() {
			if w.firstMin > final {
				return // it joined after the last write (a fast machine): nothing to deliver
			}
			var got []*orderedlog.Batch
			timeout := time.After(20 * time.Second)
			for len(got) == 0 || got[len(got)-1].Seq < final {
				select {
				case ev, ok := <-w.ch:
					if !ok || ev.Err != nil {
						t.Errorf("watcher %d ended early: %v", i, ev.Err)
						return
					}
					if ev.Batch == nil {
						continue
					}
					if len(got) > 0 && ev.Batch.Seq != got[len(got)-1].Seq+1 {
						t.Errorf("watcher %d: seq %d after %d", i, ev.Batch.Seq, got[len(got)-1].Seq)
						return
					}
					got = append(got, ev.Batch)
					if w.slowConsumer && len(got)%50 == 0 {
						time.Sleep(2 * time.Millisecond)
					}
				case <-timeout:
					t.Errorf("watcher %d timed out after %d batches", i, len(got))
					return
				}
			}
			if first := got[0].Seq; first < w.firstMin || first > w.firstMax {
				t.Errorf("watcher %d started at %d, want within [%d, %d]", i, first, w.firstMin, w.firstMax)
			}
			for _, b := range got {
				if !logtest.SameOps(b.Ops, written[b.Seq]) {
					t.Errorf("watcher %d: batch %d = %v, want %v", i, b.Seq, b.Ops, written[b.Seq])
					return
				}
			}
		})
	}
	cwg.Wait()
}

func TestWatchHeartbeatReportsTail(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{HeartbeatInterval: 20 * time.Millisecond})
	for range 3 {
		mustPropose(t, l, orderedlog.Put("services/a", nil))
	}
	ch, _ := l.Watch(context.Background(), 0)
	next := func() orderedlog.Event {
		t.Helper()
		select {
		case ev := <-ch:
			return ev
		case <-time.After(2 * time.Second):
			t.Fatal("no event within 2s")
		}
		return orderedlog.Event{}
	}
	start := time.Now()
	if ev := next(); ev.Batch != nil || ev.Err != nil || ev.Tail != 3 {
		t.Fatalf("first event = %+v, want heartbeat with tail 3", ev)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("heartbeat took %v with a 20ms interval", d)
	}
	mustPropose(t, l, orderedlog.Put("services/a", nil))
	for {
		ev := next()
		if ev.Batch != nil {
			if ev.Batch.Seq != 4 || ev.Tail != 4 {
				t.Fatalf("batch event = seq %d tail %d, want 4/4", ev.Batch.Seq, ev.Tail)
			}
			break
		}
	}
	if ev := next(); ev.Batch != nil || ev.Tail != 4 {
		t.Fatalf("heartbeat after the batch = %+v, want tail 4", ev)
	}
}

func expectCompacted(t *testing.T, l orderedlog.Log, from uint64) {
	t.Helper()
	ch, err := l.Watch(context.Background(), from)
	if err != nil {
		t.Fatal(err)
	}
	var evs []orderedlog.Event
	for ev := range ch {
		evs = append(evs, ev)
	}
	if len(evs) != 1 || !errors.Is(evs[0].Err, orderedlog.ErrCompacted) || evs[0].Batch != nil {
		t.Fatalf("Watch(%d) events = %+v, want exactly one ErrCompacted then close", from, evs)
	}
}

func TestCompaction(t *testing.T) {
	dir := t.TempDir()
	opts := Options{KeepEntries: -1, RecentBatches: 8}
	l := openTestLog(t, dir, opts)
	ctx := context.Background()
	want := proposeVaried(t, l, 50)
	state, _, _ := l.List(ctx, "")

	if err := l.Compact(ctx, 51); err == nil {
		t.Fatal("Compact beyond the tail succeeded")
	}
	if err := l.Compact(ctx, 30); err != nil {
		t.Fatal(err)
	}
	checkContiguous(t, logSeqs(t, l), 31, 50)
	expectCompacted(t, l, 10)
	expectCompacted(t, l, 30)
	ch, _ := l.Watch(ctx, 31)
	if got := collect(t, ch, 31, 50, 5*time.Second); !logtest.SameOps(got[0].Ops, want[31]) {
		t.Fatalf("batch 31 after compaction = %v", got[0].Ops)
	}
	if after, _, _ := l.List(ctx, ""); !logtest.SameKVs(after, state) {
		t.Fatal("compaction changed the key/value state")
	}
	if err := l.Compact(ctx, 20); err != nil {
		t.Fatalf("compacting below the floor should be a no-op: %v", err)
	}

	l.Close()
	l = openTestLog(t, dir, opts)
	expectCompacted(t, l, 30)
	ch, _ = l.Watch(ctx, 31)
	collect(t, ch, 31, 50, 5*time.Second)

	// Compacting everything must not lose the tail.
	if err := l.Compact(ctx, 50); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openTestLog(t, dir, opts)
	if l.Tail() != 50 {
		t.Fatalf("tail after full compaction + reopen = %d, want 50", l.Tail())
	}
	ch, _ = l.Watch(ctx, 51)
	if seq := mustPropose(t, l, orderedlog.Put("services/z", nil)); seq != 51 {
		t.Fatalf("seq after full compaction = %d, want 51", seq)
	}
	collect(t, ch, 51, 51, 5*time.Second)
}

func TestAutoCompaction(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{KeepEntries: 20})
	for i := range 100 {
		mustPropose(t, l, orderedlog.Put("services/a", val("%d", i)))
	}
	deadline := time.Now().Add(5 * time.Second)
	for l.Tail()-l.floor.Load() > 22 {
		if time.Now().After(deadline) {
			t.Fatalf("auto-compaction did not run: tail %d floor %d", l.Tail(), l.floor.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	floor := l.floor.Load()
	checkContiguous(t, logSeqs(t, l), floor+1, 100)
	expectCompacted(t, l, 1)
}

// A watcher that never reads must not slow writers down, and must still get
// everything, in order, once it does read.
func TestSlowWatcherDoesNotBlockPropose(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{RecentBatches: 8, WatchBuffer: 1})
	ch, _ := l.Watch(context.Background(), 1)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for i := range 300 {
		if _, err := l.Propose(ctx, []orderedlog.Op{orderedlog.Put("endpoints/a", val("%d", i))}); err != nil {
			t.Fatalf("Propose %d with a stalled watcher: %v", i, err)
		}
	}
	got := collect(t, ch, 1, 300, 10*time.Second)
	if string(got[299].Ops[0].Value) != "299" {
		t.Fatalf("last batch = %q", got[299].Ops[0].Value)
	}
}

func TestWatchFromTheFutureWaits(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{HeartbeatInterval: 10 * time.Millisecond})
	mustPropose(t, l, orderedlog.Put("services/a", nil))
	ch, _ := l.Watch(context.Background(), 4)
	for range 3 {
		mustPropose(t, l, orderedlog.Put("services/a", nil))
	}
	collect(t, ch, 4, 4, 5*time.Second)
}

func TestWatchClosesOnCancelAndClose(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	canceled, _ := l.Watch(ctx, 0)
	other, _ := l.Watch(context.Background(), 0)
	drained := func(ch <-chan orderedlog.Event) bool {
		timeout := time.After(5 * time.Second)
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					return true
				}
			case <-timeout:
				return false
			}
		}
	}
	cancel()
	if !drained(canceled) {
		t.Fatal("watch channel not closed after ctx cancel")
	}
	l.Close()
	if !drained(other) {
		t.Fatal("watch channel not closed after Close")
	}
}
