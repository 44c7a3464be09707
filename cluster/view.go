package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runenet/runenet/orderedlog"
)

// Source is what a View reads: the OrderedLog itself in runed, or runed's
// watch API from a remote process (a stock CoreDNS with plugin/rune).
type Source = orderedlog.Follower

// ViewOptions tune a View.
type ViewOptions struct {
	// StaleBudget: past this much lag consumers fail closed. Default 30s.
	StaleBudget time.Duration
	// RetryBackoff bounds the delay between reconnects to the Source.
	RetryBackoff time.Duration
	Logger       *slog.Logger
}

// View is the one watcher per process that materializes the log into
// immutable snapshots. Readers never lock: Snapshot() is an atomic load.
type View struct {
	src  Source
	opts ViewOptions

	snap atomic.Pointer[Snapshot]
	hist *history // what each snapshot changed, for Snapshot.ChangesSince
	// currentAt is when the View last knew it had applied everything the log
	// holds (unix nanos); lag is measured from it, so it keeps growing when the
	// watch stalls even though nothing new arrives.
	currentAt atomic.Int64
	tail      atomic.Uint64
	loaded    atomic.Bool
	pausedTil atomic.Int64
	// watching is set while a watch stream is delivering: only then does
	// "applied up to the tail" mean current. Once the stream is gone (for a
	// remote View: runed died) the tail it last reported says nothing about
	// the log now, so the lag grows from the last time the View knew.
	watching atomic.Bool
	// sinceLeader is, for a replicated log, how long before the last event
	// the source's node had heard from a leader (nanoseconds): a node cut
	// off from the majority still beats locally, and only this grows.
	sinceLeader atomic.Int64

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every new snapshot
}

func NewView(src Source, opts ViewOptions) *View {
	if opts.StaleBudget <= 0 {
		opts.StaleBudget = 30 * time.Second
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	v := &View{src: src, opts: opts, changed: make(chan struct{}), hist: &history{}}
	v.snap.Store(&Snapshot{hist: v.hist})
	v.currentAt.Store(time.Now().UnixNano())
	return v
}

// Snapshot returns the latest snapshot (empty, Seq 0, before the first load).
func (v *View) Snapshot() *Snapshot { return v.snap.Load() }

// Loaded reports whether the View has caught up with the log at least once.
func (v *View) Loaded() bool { return v.loaded.Load() }

// Lag is how long since the View last knew it was current with the log.
func (v *View) Lag() time.Duration {
	if v.watching.Load() && v.snap.Load().Seq >= v.tail.Load() && v.Loaded() && !v.paused() {
		return time.Duration(v.sinceLeader.Load())
	}
	return time.Since(time.Unix(0, v.currentAt.Load()))
}

// Stale reports whether the lag is past the stale budget: consumers must fail
// closed while it is.
func (v *View) Stale() bool { return v.Lag() > v.opts.StaleBudget }

func (v *View) StaleBudget() time.Duration { return v.opts.StaleBudget }

// Tail is the newest log seq the View has heard of.
func (v *View) Tail() uint64 { return v.tail.Load() }

// Changed returns a channel closed when the next snapshot is published.
func (v *View) Changed() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.changed
}

// WaitFor blocks until the View has applied seq (or ctx ends).
func (v *View) WaitFor(ctx context.Context, seq uint64) error {
	for {
		ch := v.Changed()
		if v.snap.Load().Seq >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the view to reach seq %d (at %d): %w", seq, v.snap.Load().Seq, ctx.Err())
		}
	}
}

// WaitLoaded blocks until the View has loaded the log once. Before that its
// snapshot is empty, and an answer read from it would say that nothing
// exists; a read that cannot wait gets a KindNotReady error instead.
func (v *View) WaitLoaded(ctx context.Context) error {
	for {
		ch := v.Changed()
		if v.Loaded() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return errorf(KindNotReady, "not ready: the node is still loading its store; retry shortly (`rune status` shows when it is ready)")
		}
	}
}

// PauseFor stops applying the log for d, as if the watch had stalled. It is
// the fault injection behind `rune debug pause-watch`, used to show that
// every consumer fails closed past the stale budget and recovers after.
func (v *View) PauseFor(d time.Duration) {
	v.pausedTil.Store(time.Now().Add(d).UnixNano())
}

func (v *View) paused() bool { return time.Now().UnixNano() < v.pausedTil.Load() }

// publish makes e's snapshot the current one, recording what it changed.
func (v *View) publish(e *snapshotEditor) {
	s := e.done()
	s.hist, s.gen = v.hist, v.hist.add(e.changed, e.changedNodes)
	v.snap.Store(s)
	v.notify()
}

func (v *View) notify() {
	v.mu.Lock()
	close(v.changed)
	v.changed = make(chan struct{})
	v.mu.Unlock()
}

// markCurrent records what the source last said: its tail, and how long
// ago its node heard from a leader (0 for a single-node log). Being applied
// up to the tail makes the View current as of that contact, not as of now.
func (v *View) markCurrent(tail uint64, sinceLeader time.Duration) {
	if tail > v.tail.Load() {
		v.tail.Store(tail)
	}
	v.sinceLeader.Store(int64(sinceLeader))
	if v.snap.Load().Seq >= v.tail.Load() {
		v.currentAt.Store(time.Now().Add(-sinceLeader).UnixNano())
	}
}

// Run lists and watches until ctx ends, re-listing after compaction and
// reconnecting with back-off when the source fails.
func (v *View) Run(ctx context.Context) error {
	setMetricsView(v)
	backoff := 50 * time.Millisecond
	for {
		err := v.runOnce(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		v.opts.Logger.Warn("view: watch ended, reconnecting", "err", err, "seq", v.snap.Load().Seq, "backoff", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(backoff*2, v.opts.RetryBackoff)
	}
}

var errRelist = errors.New("relist")

func (v *View) runOnce(ctx context.Context) error {
	if !v.Loaded() {
		if err := v.relist(ctx); err != nil {
			return err
		}
	}
	for {
		err := v.follow(ctx)
		if !errors.Is(err, errRelist) {
			return err
		}
		if err := v.relist(ctx); err != nil {
			return err
		}
	}
}

// relist replaces the snapshot with a full, consistent read of the log.
func (v *View) relist(ctx context.Context) error {
	s, err := LoadFrom(ctx, v.src)
	if err != nil {
		return err
	}
	s.hist, s.gen = v.hist, v.hist.add(nil, nil)
	// Loaded before waiters wake, so WaitLoaded sees the load it woke for.
	v.snap.Store(s)
	v.markCurrent(s.Seq, time.Duration(v.sinceLeader.Load()))
	v.loaded.Store(true)
	v.notify()
	return nil
}

// LoadFrom builds a snapshot from a full listing of src. Records are decoded
// on other goroutines while the source is still reading, then indexed in one
// pass: a cold start of 100,000 services is bounded by the slower of
// reading and decoding, not their sum.
func LoadFrom(ctx context.Context, src Source) (*Snapshot, error) {
	type chunk struct {
		kvs  []orderedlog.KV
		recs []record
		err  error
		done chan struct{}
	}
	const chunkSize = 2048
	var chunks []*chunk
	work := make(chan *chunk, 16)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				c.recs = make([]record, len(c.kvs))
				for i, kv := range c.kvs {
					if c.recs[i], c.err = decodeRecord(kv.Key, kv.Value, false); c.err != nil {
						break
					}
				}
				close(c.done)
			}
		}()
	}
	cur := &chunk{done: make(chan struct{})}
	seq, err := src.ListFunc(ctx, "", func(kv orderedlog.KV) error {
		kv.Value = bytes.Clone(kv.Value)
		cur.kvs = append(cur.kvs, kv)
		if len(cur.kvs) == chunkSize {
			chunks = append(chunks, cur)
			work <- cur
			cur = &chunk{done: make(chan struct{})}
		}
		return nil
	})
	chunks = append(chunks, cur)
	work <- cur
	close(work)
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	for _, c := range chunks {
		if c.err != nil {
			return nil, c.err
		}
	}
	e := newSnapshotEditor()
	// Each group of kinds touches only its own maps, so the groups index in
	// parallel.
	var iwg sync.WaitGroup
	for _, group := range [][]recordKind{{recService, recNetwork, recContainerNetwork}, {recInstance}, {recVIP}, {recEndpoints, recPolicy}, {recNode, recSubnet}} {
		iwg.Add(1)
		go func() {
			defer iwg.Done()
			for _, c := range chunks {
				for i := range c.recs {
					if slices.Contains(group, c.recs[i].kind) {
						e.insert(c.recs[i], c.kvs[i].Rev)
					}
				}
			}
		}()
	}
	iwg.Wait()
	s := e.done()
	s.Seq = seq
	return s, nil
}

func (v *View) follow(ctx context.Context) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	from := v.snap.Load().Seq + 1
	ch, err := v.src.Watch(wctx, from)
	if err != nil {
		if errors.Is(err, orderedlog.ErrCompacted) {
			return errRelist
		}
		return fmt.Errorf("watch from %d: %w", from, err)
	}
	defer v.watching.Store(false)
	for {
		if until := v.pausedTil.Load(); time.Now().UnixNano() < until {
			// Stop reading, as a stalled watch would; the source buffers or
			// re-reads from disk, and applying resumes where it stopped.
			select {
			case <-time.After(time.Until(time.Unix(0, until))):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		var ev orderedlog.Event
		var ok bool
		select {
		case ev, ok = <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !ok {
			return errors.New("watch closed")
		}
		if ev.Err != nil {
			if errors.Is(ev.Err, orderedlog.ErrCompacted) {
				return errRelist
			}
			return ev.Err
		}
		if ev.Batch != nil {
			if err := v.applyBatches(ev.Batch, ch, &ev); err != nil {
				if errors.Is(err, orderedlog.ErrCompacted) {
					return errRelist
				}
				return err
			}
		}
		v.watching.Store(true)
		v.markCurrent(ev.Tail, ev.SinceLeader)
	}
}

// applyBatches applies b and any batches already waiting on ch into one new
// snapshot, so a burst of writes costs one publish, not one per batch.
func (v *View) applyBatches(b *orderedlog.Batch, ch <-chan orderedlog.Event, last *orderedlog.Event) error {
	cur := v.snap.Load()
	e := cur.edit()
	for {
		if b.Seq != e.next.Seq+1 {
			return fmt.Errorf("watch delivered seq %d after %d: gap", b.Seq, e.next.Seq)
		}
		for _, op := range b.Ops {
			if err := e.apply(op, b.Seq); err != nil {
				return fmt.Errorf("seq %d: %w", b.Seq, err)
			}
		}
		e.next.Seq = b.Seq
		if last.Tail < b.Seq {
			last.Tail = b.Seq
		}
		observeApply(b)
		select {
		case ev, ok := <-ch:
			if ok && ev.Err == nil && ev.Batch != nil {
				b = ev.Batch
				if ev.Tail > last.Tail {
					last.Tail = ev.Tail
				}
				continue
			}
			if ok && ev.Err == nil {
				if ev.Tail > last.Tail {
					last.Tail = ev.Tail
				}
			} else {
				v.publish(e)
				if !ok {
					return errors.New("watch closed")
				}
				return ev.Err
			}
		default:
		}
		v.publish(e)
		return nil
	}
}
