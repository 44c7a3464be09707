package logtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/runenet/runenet/orderedlog"
)

// watchTimeout bounds every wait for a watch event; it is generous because
// the machine running the tests may be busy, not because a backend may be slow.
const watchTimeout = 20 * time.Second

// ProposeVaried writes n batches of mixed shapes (puts, deletes,
// allocations, checks) and returns their ops by seq (index 0 unused).
func ProposeVaried(t testing.TB, l orderedlog.Log, n int) [][]orderedlog.Op {
	t.Helper()
	want := make([][]orderedlog.Op, 1, n+1)
	for i := 1; i <= n; i++ {
		ops := []orderedlog.Op{orderedlog.Put(fmt.Sprintf("endpoints/s%d/%d", i%7, i%3), Val("%d-%s", i, make([]byte, i%50)))}
		switch i % 4 {
		case 1:
			ops = append(ops, orderedlog.Delete(fmt.Sprintf("endpoints/s%d/%d", (i+1)%7, 0)))
		case 2:
			ops = append(ops, orderedlog.PutIf(fmt.Sprintf("network/vips/v%d", i), Val("10.96.0.%d", i%250), 0))
		case 3:
			ops = append(ops, orderedlog.Check("services/absent", 0), orderedlog.Put("services/counter", Val("%d", i)))
		}
		if seq := MustPropose(t, l, ops...); seq != uint64(i) {
			t.Fatalf("seq = %d, want %d", seq, i)
		}
		want = append(want, ops)
	}
	return want
}

func testWatchReplaysFromEverySeq(t *testing.T, l orderedlog.Log) {
	const n = 120
	want := ProposeVaried(t, l, n)
	for from := uint64(1); from <= n; from++ {
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := l.Watch(ctx, from)
		if err != nil {
			t.Fatal(err)
		}
		got := Collect(t, ch, from, n, watchTimeout)
		cancel()
		for _, b := range got {
			if !SameOps(b.Ops, want[b.Seq]) || b.Time.IsZero() {
				t.Fatalf("watch from %d: batch %d = %v at %v, want %v", from, b.Seq, b.Ops, b.Time, want[b.Seq])
			}
		}
	}
}

// Watchers started while proposers run must see every batch exactly once,
// whether they start in the past, at the tail, or race the writers.
func testWatchWhileProposing(t *testing.T, l orderedlog.Log) {
	const workers, each = 4, 100
	var (
		mu      sync.Mutex
		written = map[uint64][]orderedlog.Op{}
		wg      sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				ops := []orderedlog.Op{orderedlog.Put(fmt.Sprintf("endpoints/w%d/%d", w, i%5), Val("%d.%d", w, i))}
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
		time.Sleep(5 * time.Millisecond) // spreads the starts over the writes; not a synchronization
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
			timeout := time.After(watchTimeout)
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
						time.Sleep(2 * time.Millisecond) // a slow consumer, not a synchronization
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
				if !SameOps(b.Ops, written[b.Seq]) {
					t.Errorf("watcher %d: batch %d = %v, want %v", i, b.Seq, b.Ops, written[b.Seq])
					return
				}
			}
		})
	}
	cwg.Wait()
}

// While nothing is written a watcher still hears the tail, so it can tell
// "idle" from "cut off".
func testWatchHeartbeatReportsTail(t *testing.T, l orderedlog.Log) {
	for range 3 {
		MustPropose(t, l, orderedlog.Put("services/a", nil))
	}
	ch, _ := l.Watch(context.Background(), 0)
	next := func() orderedlog.Event {
		t.Helper()
		select {
		case ev := <-ch:
			return ev
		case <-time.After(watchTimeout):
			t.Fatal("no event, not even a heartbeat")
		}
		return orderedlog.Event{}
	}
	if ev := next(); ev.Batch != nil || ev.Err != nil || ev.Tail != 3 {
		t.Fatalf("first event = %+v, want heartbeat with tail 3", ev)
	}
	MustPropose(t, l, orderedlog.Put("services/a", nil))
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

// ExpectCompacted fails unless a watch from from ends with exactly one
// ErrCompacted event.
func ExpectCompacted(t testing.TB, l orderedlog.Watcher, from uint64) {
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

// Compaction drops history, never state; a watcher asking for dropped
// history is told so and recovers the way a View does: list, then watch from
// the listed seq + 1.
func testCompactionAndRelist(t *testing.T, l orderedlog.Log) {
	ctx := context.Background()
	want := ProposeVaried(t, l, 50)
	state, _, _ := l.List(ctx, "")

	if err := l.Compact(ctx, 51); err == nil {
		t.Fatal("Compact beyond the tail succeeded")
	}
	if err := l.Compact(ctx, 30); err != nil {
		t.Fatal(err)
	}
	ExpectCompacted(t, l, 10)
	ExpectCompacted(t, l, 30)
	ch, _ := l.Watch(ctx, 31)
	if got := Collect(t, ch, 31, 50, watchTimeout); !SameOps(got[0].Ops, want[31]) {
		t.Fatalf("batch 31 after compaction = %v", got[0].Ops)
	}
	if after, _, _ := l.List(ctx, ""); !SameKVs(after, state) {
		t.Fatal("compaction changed the key/value state")
	}
	if err := l.Compact(ctx, 20); err != nil {
		t.Fatalf("compacting below the floor should be a no-op: %v", err)
	}

	// Compacting everything must not lose the tail.
	if err := l.Compact(ctx, 50); err != nil {
		t.Fatal(err)
	}
	ExpectCompacted(t, l, 1)
	kvs, seq, err := l.List(ctx, "")
	if err != nil || seq != 50 || !SameKVs(kvs, state) {
		t.Fatalf("re-list after full compaction = %d keys at seq %d (err %v), want the state at 50", len(kvs), seq, err)
	}
	ch, _ = l.Watch(ctx, seq+1)
	if s := MustPropose(t, l, orderedlog.Put("services/z", nil)); s != 51 {
		t.Fatalf("seq after full compaction = %d, want 51", s)
	}
	Collect(t, ch, 51, 51, watchTimeout)
}

// A watcher that never reads must not slow writers down, and must still get
// everything, in order, once it does read.
func testSlowWatcher(t *testing.T, l orderedlog.Log) {
	ch, _ := l.Watch(context.Background(), 1)
	ctx, cancel := context.WithTimeout(context.Background(), watchTimeout)
	defer cancel()
	for i := range 300 {
		if _, err := l.Propose(ctx, []orderedlog.Op{orderedlog.Put("endpoints/a", Val("%d", i))}); err != nil {
			t.Fatalf("Propose %d with a stalled watcher: %v", i, err)
		}
	}
	got := Collect(t, ch, 1, 300, watchTimeout)
	if string(got[299].Ops[0].Value) != "299" {
		t.Fatalf("last batch = %q", got[299].Ops[0].Value)
	}
}

func testWatchFromTheFuture(t *testing.T, l orderedlog.Log) {
	MustPropose(t, l, orderedlog.Put("services/a", nil))
	ch, _ := l.Watch(context.Background(), 4)
	for range 3 {
		MustPropose(t, l, orderedlog.Put("services/a", nil))
	}
	Collect(t, ch, 4, 4, watchTimeout)
}

func testWatchCloses(t *testing.T, l orderedlog.Log) {
	ctx, cancel := context.WithCancel(context.Background())
	canceled, _ := l.Watch(ctx, 0)
	other, _ := l.Watch(context.Background(), 0)
	drained := func(ch <-chan orderedlog.Event) bool {
		timeout := time.After(watchTimeout)
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
