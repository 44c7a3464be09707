// Package raft is the replicated OrderedLog: hashicorp/raft orders batches
// across the cluster's nodes, raft-boltdb holds the Raft log and stable
// state, and the FileSnapshotStore keeps snapshots of the state machine.
//
// Every node applies the committed batches to an in-memory state machine
// with its own seq counter (one per applied batch, identical everywhere;
// the Raft index also counts configuration entries and no-ops), so a key's
// revision is a seq, as on the single-node backend. Reads and watches are
// served from the local node's applied state; Propose works on any node (a
// follower forwards to the leader) and returns once this node has applied
// the batch.
package raft

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/internal/codec"
	"github.com/runenet/runenet/orderedlog/internal/follow"
	"github.com/runenet/runenet/orderedlog/internal/logmetrics"
)

// Options configures a node. NodeID, Dir and Transport are required.
type Options struct {
	// NodeID names the node in the cluster (its Raft server ID).
	NodeID string
	// Dir holds raft.db (log and stable store) and snapshots/.
	Dir string
	// Transport carries Raft and forwarded proposals.
	Transport Transport
	// Bootstrap makes a node with no Raft state in Dir the first voter of
	// a new cluster. A node that has state ignores it.
	Bootstrap bool
	// CA is the cluster CA with its key: with it (and a TLS transport) the
	// node admits joining nodes and creates join tokens (join.go).
	CA *CA

	// RetryWindow is how long Propose keeps retrying through leader
	// changes before giving up with ErrOutcomeUnknown (or ErrUnavailable
	// when no leader was ever reached). Default 10s.
	RetryWindow time.Duration
	// DedupWindow is how many recent request ids the state machine
	// remembers (and snapshots), so a retry applies at most once. At 1,000
	// writes/s the default 65536 covers a minute, six retry windows.
	DedupWindow int
	// RecentBatches is the watch history kept in memory; a watcher asking
	// for older batches gets ErrCompacted and re-lists. Default 65536.
	RecentBatches int
	// HeartbeatInterval is how often watchers get a heartbeat. Default 200ms.
	HeartbeatInterval time.Duration
	// WatchBuffer is each watch channel's capacity. Default 256.
	WatchBuffer int

	// HeartbeatTimeout and ElectionTimeout are Raft's (defaults 1s each);
	// the leader lease is half the heartbeat timeout.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// CommitTimeout is how soon, with no new entries flowing, the leader
	// tells followers what is committed (Raft's CommitTimeout). A write
	// through a follower, or a watch on one, waits for it (Raft waits a
	// random 1-2× CommitTimeout). Default 2ms (Raft's own is 50ms): 250-500
	// empty appends per second per follower while idle, about 1% of a core
	// per node more than 5ms, for half the latency of a write through a
	// follower (docs/benchmarks.md).
	CommitTimeout time.Duration
	// SnapshotThreshold is how many new Raft entries trigger a snapshot,
	// and TrailingLogs how many stay behind it for followers to catch up
	// from without a snapshot (Raft's defaults 8192 and 10240).
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// MaxAppendEntries is how many entries one append to a follower
	// carries, and so how many proposals the leader writes to disk at once
	// (Raft's default 64; at most 1024). Default 1024: a follower catching
	// up pays one fsync per append.
	MaxAppendEntries int

	// Logger receives Raft's warnings and errors. Default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	switch {
	case o.NodeID == "":
		return o, errors.New("orderedlog/raft: a node ID is required")
	case o.Dir == "":
		return o, errors.New("orderedlog/raft: a data directory is required")
	case o.Transport == nil:
		return o, errors.New("orderedlog/raft: a transport is required")
	}
	if o.RetryWindow <= 0 {
		o.RetryWindow = 10 * time.Second
	}
	if o.DedupWindow <= 0 {
		o.DedupWindow = 1 << 16
	}
	if o.RecentBatches <= 0 {
		o.RecentBatches = 1 << 16
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = 200 * time.Millisecond
	}
	if o.WatchBuffer <= 0 {
		o.WatchBuffer = 256
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = 2 * time.Millisecond
	}
	if o.MaxAppendEntries <= 0 {
		o.MaxAppendEntries = 1024
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// Log is one node's view of the replicated log.
type Log struct {
	opts  Options
	raft  *hraft.Raft
	fsm   *fsm
	trans Transport
	store *raftboltdb.BoltStore

	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error
	// life is held shared while a watch starts, so Close can wait for every
	// watch after it has set closed.
	life   sync.RWMutex
	closed bool
	wg     sync.WaitGroup

	// leaderSeen is the last time (unix nanos) this node knew a leader:
	// itself, or one it heard from.
	leaderSeen atomic.Int64
	// heartbeatTimeout is Raft's: a node that heard from no leader for
	// longer is not healthy (promote.go).
	heartbeatTimeout time.Duration
	// forwardTimeout bounds one forward to the leader (forward.go).
	forwardTimeout time.Duration
	// leaderChanged wakes when this node's known leader changes.
	leaderChanged *follow.Notifier
}

var _ orderedlog.Log = (*Log)(nil)

// Open starts the node: it restores the latest snapshot, replays the Raft
// log after it once a leader commits, and (with Bootstrap, on an empty Dir)
// forms a one-voter cluster.
func Open(opts Options) (*Log, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	logmetrics.Register(opts.Logger, collectors...)
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("orderedlog/raft: %w", err)
	}
	hlog := hclogFor(opts.Logger)

	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(opts.Dir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("orderedlog/raft: opening %s: %w", filepath.Join(opts.Dir, "raft.db"), err)
	}
	logs, err := hraft.NewLogCache(512, store)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("orderedlog/raft: %w", err)
	}
	snaps, err := hraft.NewFileSnapshotStoreWithLogger(opts.Dir, 2, hlog)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("orderedlog/raft: snapshot store in %s: %w", opts.Dir, err)
	}
	hasState, err := hraft.HasExistingState(logs, store, snaps)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("orderedlog/raft: reading %s: %w", opts.Dir, err)
	}

	conf := hraft.DefaultConfig()
	conf.LocalID = hraft.ServerID(opts.NodeID)
	conf.Logger = hlog
	conf.BatchApplyCh = true
	conf.CommitTimeout = opts.CommitTimeout
	conf.MaxAppendEntries = opts.MaxAppendEntries
	if opts.HeartbeatTimeout > 0 {
		conf.HeartbeatTimeout = opts.HeartbeatTimeout
		conf.LeaderLeaseTimeout = opts.HeartbeatTimeout / 2
	}
	if opts.ElectionTimeout > 0 {
		conf.ElectionTimeout = opts.ElectionTimeout
	}
	if opts.SnapshotThreshold > 0 {
		conf.SnapshotThreshold = opts.SnapshotThreshold
	}
	if opts.TrailingLogs > 0 {
		conf.TrailingLogs = opts.TrailingLogs
	}
	if err := hraft.ValidateConfig(conf); err != nil {
		store.Close()
		return nil, fmt.Errorf("orderedlog/raft: %w", err)
	}

	l := &Log{
		opts:    opts,
		fsm:     newFSM(opts.DedupWindow, opts.RecentBatches, opts.Logger),
		trans:   opts.Transport,
		store:   store,
		closing: make(chan struct{}),

		heartbeatTimeout: conf.HeartbeatTimeout,
		forwardTimeout:   conf.HeartbeatTimeout + conf.ElectionTimeout,
		leaderChanged:    follow.NewNotifier(),
	}
	l.leaderSeen.Store(time.Now().UnixNano())
	r, err := hraft.NewRaft(conf, l.fsm, logs, store, snaps, opts.Transport.Raft())
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("orderedlog/raft: starting raft: %w", err)
	}
	l.raft = r
	opts.Transport.Handle(l.serveForward)
	if js, ok := opts.Transport.(joinServer); ok {
		js.HandleJoin(l.serveJoin) // without a CA it answers why it cannot admit
	}
	l.wg.Go(l.promoteLoop)
	l.watchLeader()
	if opts.Bootstrap && !hasState {
		boot := hraft.Configuration{Servers: []hraft.Server{{ID: conf.LocalID, Address: opts.Transport.Raft().LocalAddr()}}}
		if err := r.BootstrapCluster(boot).Error(); err != nil {
			l.Close()
			return nil, fmt.Errorf("orderedlog/raft: bootstrapping: %w", err)
		}
	}
	setMetricsLog(l)
	return l, nil
}

// hclogFor routes hashicorp/raft's warnings and errors into logger; its
// info chatter (every election step) is dropped.
func hclogFor(logger *slog.Logger) hclog.Logger {
	return hclog.FromStandardLogger(slog.NewLogLogger(logger.Handler(), slog.LevelWarn), &hclog.LoggerOptions{Name: "raft", Level: hclog.Warn})
}

// Propose implements orderedlog.Log. The batch gets one request id for all
// its attempts; the state machine applies an id at most once.
func (l *Log) Propose(ctx context.Context, ops []orderedlog.Op) (uint64, error) {
	start := time.Now()
	if err := orderedlog.Validate(ops); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	select {
	case <-l.closing:
		return 0, orderedlog.ErrClosed
	default:
	}
	enc, _ := codec.Encode(ops)
	o, err := l.through(ctx, forwardPropose, encodeCommand(newRequestID(), enc), start.Add(l.opts.RetryWindow), true)
	if err != nil {
		return 0, err
	}
	if o.conflict != nil {
		logmetrics.Conflicts.Inc()
		return 0, o.conflict
	}
	logmetrics.ProposeSeconds.Observe(time.Since(start).Seconds())
	return o.seq, nil
}

// Sync waits until this node has applied everything the cluster had
// committed when Sync was called, and returns its seq then: a read after it
// misses no write acknowledged before it (a linearizable read point). It
// costs a round of Raft through the leader.
func (l *Log) Sync(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	o, err := l.through(ctx, forwardSync, nil, time.Now().Add(l.opts.RetryWindow), true)
	if err != nil {
		return 0, err
	}
	return max(o.seq, l.Tail()), nil
}

// through gets a request done by the leader (this node or, forwarded, the
// one it knows), retrying through leader changes until deadline, then, with
// applyHere, waits until this node has applied the Raft index the leader
// answered with.
func (l *Log) through(ctx context.Context, kind byte, body []byte, deadline time.Time, applyHere bool) (*outcome, error) {
	var maybe bool // an attempt may have been submitted
	backoff := 5 * time.Millisecond
	for {
		o, err := l.submit(ctx, kind, body, time.Until(deadline))
		if err == nil {
			if !applyHere {
				return o, nil
			}
			if err := l.waitApplied(ctx, o.index, deadline); err != nil {
				return nil, fmt.Errorf("%w: committed, but this node has not applied it yet: %w", orderedlog.ErrOutcomeUnknown, err)
			}
			return o, nil
		}
		if errors.Is(err, errRejected) || errors.Is(err, errBadCommand) {
			return nil, err
		}
		maybe = maybe || errors.Is(err, errMaybeSubmitted)
		wait := min(backoff, time.Until(deadline))
		if wait <= 0 {
			return nil, l.giveUp(maybe, err, nil)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, l.giveUp(maybe, err, ctx.Err())
		case <-l.closing:
			t.Stop()
			return nil, l.giveUp(maybe, err, orderedlog.ErrClosed)
		}
		// A short cap: a write that waits out an election goes through
		// within 25 ms of a new leader; a failed attempt costs little (no
		// leader known, or a refused dial).
		backoff = min(backoff*2, 25*time.Millisecond)
	}
}

// giveUp is the error of a request once it stops retrying: unknown if any attempt
// may have reached a leader, unavailable (nothing applied) otherwise.
func (l *Log) giveUp(maybe bool, last, cause error) error {
	switch {
	case maybe && cause != nil:
		return fmt.Errorf("%w: %w (last attempt: %v)", orderedlog.ErrOutcomeUnknown, cause, last)
	case maybe:
		return fmt.Errorf("%w after %v (last attempt: %v)", orderedlog.ErrOutcomeUnknown, l.opts.RetryWindow, last)
	case cause != nil:
		return fmt.Errorf("%w (no leader reached: %v)", cause, last)
	}
	return fmt.Errorf("%w within %v: %v", orderedlog.ErrUnavailable, l.opts.RetryWindow, last)
}

// waitApplied blocks until this node's state machine has applied index.
func (l *Log) waitApplied(ctx context.Context, index uint64, deadline time.Time) error {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		changed := l.fsm.notify.Wait()
		if l.fsm.applied().index >= index {
			return nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return fmt.Errorf("waiting for Raft index %d (applied %d) for %v", index, l.fsm.applied().index, l.opts.RetryWindow)
		case <-ctx.Done():
			return ctx.Err()
		case <-l.closing:
			return orderedlog.ErrClosed
		}
	}
}

func (l *Log) isClosed() bool {
	select {
	case <-l.closing:
		return true
	default:
		return false
	}
}

// Get implements orderedlog.Log from this node's applied state.
func (l *Log) Get(ctx context.Context, key string) (orderedlog.KV, bool, uint64, error) {
	if err := ctx.Err(); err != nil {
		return orderedlog.KV{}, false, 0, err
	}
	if l.isClosed() {
		return orderedlog.KV{}, false, 0, orderedlog.ErrClosed
	}
	st := l.fsm.applied()
	v, ok := st.kv.Get([]byte(key))
	if !ok {
		return orderedlog.KV{}, false, st.seq, nil
	}
	e := v.(*kvEntry)
	return orderedlog.KV{Key: key, Value: slices.Clone(e.value), Rev: e.rev}, true, st.seq, nil
}

// List implements orderedlog.Log from this node's applied state.
func (l *Log) List(ctx context.Context, prefix string) ([]orderedlog.KV, uint64, error) {
	return orderedlog.ListAll(ctx, l, prefix)
}

// ListFunc implements orderedlog.Log from one immutable version of this
// node's applied state, so the listing is consistent without locking.
func (l *Log) ListFunc(ctx context.Context, prefix string, fn func(orderedlog.KV) error) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if l.isClosed() {
		return 0, orderedlog.ErrClosed
	}
	st := l.fsm.applied()
	it := st.kv.Root().Iterator()
	it.SeekPrefix([]byte(prefix))
	n := 0
	for k, v, ok := it.Next(); ok; k, v, ok = it.Next() {
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		e := v.(*kvEntry)
		if err := fn(orderedlog.KV{Key: string(k), Value: e.value, Rev: e.rev}); err != nil {
			return 0, fmt.Errorf("orderedlog/raft: list %q: %w", prefix, err)
		}
	}
	return st.seq, nil
}

// Tail is the seq of the last batch this node applied.
func (l *Log) Tail() uint64 { return l.fsm.applied().seq }

// Watch implements orderedlog.Log from this node's apply stream.
// Heartbeats carry the applied seq and SinceLeader.
func (l *Log) Watch(ctx context.Context, from uint64) (<-chan orderedlog.Event, error) {
	l.life.RLock()
	defer l.life.RUnlock()
	if l.closed {
		return nil, orderedlog.ErrClosed
	}
	if from == 0 {
		from = l.Tail() + 1
	}
	ch := make(chan orderedlog.Event, l.opts.WatchBuffer)
	l.wg.Go(func() {
		defer close(ch)
		follow.Serve(ctx, l.closing, watchSource{l}, from, l.opts.HeartbeatInterval, ch)
	})
	return ch, nil
}

// watchSource is what follow.Serve sees of the log.
type watchSource struct{ l *Log }

func (w watchSource) Tail() uint64             { return w.l.Tail() }
func (w watchSource) Changed() <-chan struct{} { return w.l.fsm.notify.Wait() }

// Floor: history the ring no longer holds is as gone as compacted history.
func (w watchSource) Floor() uint64 { return max(w.l.fsm.floor.Load(), w.l.fsm.ring.Low()-1) }

func (w watchSource) Heartbeat() orderedlog.Event {
	return orderedlog.Event{Tail: w.l.Tail(), SinceLeader: w.l.SinceLeader()}
}

func (w watchSource) Batches(from, to uint64, buf []*orderedlog.Batch) ([]*orderedlog.Batch, error) {
	if w.l.isClosed() {
		return buf, orderedlog.ErrClosed
	}
	if from > w.l.fsm.floor.Load() {
		if got, ok := w.l.fsm.ring.Get(from, to, buf); ok {
			return got, nil
		}
	}
	return buf, orderedlog.ErrCompacted
}

// SinceLeader is how long ago this node last knew a leader: zero while it
// leads, the time since the leader's last contact while it follows.
func (l *Log) SinceLeader() time.Duration {
	now := time.Now()
	if l.raft.State() == hraft.Leader {
		l.leaderSeen.Store(now.UnixNano())
		return 0
	}
	seen := time.Unix(0, l.leaderSeen.Load())
	if c := l.raft.LastContact(); c.After(seen) {
		seen = c
	}
	return max(now.Sub(seen), 0)
}

// Compact drops watch history up to upTo; the state stays. Raft compacts
// its own log behind snapshots (SnapshotThreshold, TrailingLogs).
func (l *Log) Compact(ctx context.Context, upTo uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.isClosed() {
		return orderedlog.ErrClosed
	}
	if tail := l.Tail(); upTo > tail {
		return fmt.Errorf("orderedlog/raft: cannot compact up to %d, the tail is %d", upTo, tail)
	}
	for {
		floor := l.fsm.floor.Load()
		if upTo <= floor || l.fsm.floor.CompareAndSwap(floor, upTo) {
			return nil
		}
	}
}

// Close stops the node: Raft shuts down (pending proposals get ErrClosed or
// ErrOutcomeUnknown), every watch ends, and the stores close.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		close(l.closing)
		l.life.Lock()
		l.closed = true
		l.life.Unlock()
		if d, ok := l.trans.(interface{ stopDialing() }); ok {
			d.stopDialing() // Shutdown waits for RPCs a retrying dial holds
		}
		err := l.raft.Shutdown().Error()
		l.wg.Wait()
		l.closeErr = errors.Join(err, l.store.Close())
		clearMetricsLog(l)
	})
	return l.closeErr
}
