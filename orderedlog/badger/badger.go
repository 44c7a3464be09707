package badger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	badgerdb "github.com/dgraph-io/badger/v4"
	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/internal/codec"
	"github.com/runenet/runenet/orderedlog/internal/follow"
	"github.com/runenet/runenet/orderedlog/internal/logmetrics"
)

// Badger key layout. The first byte is a namespace that no user key can
// reach, because user keys are always stored behind nsState.
const (
	nsMeta  byte = 0x00
	nsState byte = 0x01 // nsState + user key → uvarint rev + value
	nsLog   byte = 0x02 // nsLog + 8-byte big-endian seq → encoded batch
)

var (
	// metaTail is rewritten by every batch in the batch's own transaction, so
	// any read transaction knows exactly which seq its view reflects.
	metaTail = []byte{nsMeta, 't'}
	// metaFloor is the highest compacted seq: entries (floor, tail] exist.
	metaFloor = []byte{nsMeta, 'f'}
)

// ErrBatchTooLarge: a single batch exceeds what one Badger transaction
// holds; split it or raise Options.MemTableSize.
var ErrBatchTooLarge = errors.New("orderedlog: batch too large for one transaction")

// Options tunes a Log. The zero value gives the defaults.
type Options struct {
	// HeartbeatInterval is how often watchers get a heartbeat event.
	// Default 200ms.
	HeartbeatInterval time.Duration
	// KeepEntries is how many of the most recent log entries auto-compaction
	// keeps; it runs in the background once 10% more have accumulated.
	// Default 100000; negative disables auto-compaction.
	KeepEntries int
	// RecentBatches is how many recent batches stay in memory so live
	// watchers never read the disk. Default 4096.
	RecentBatches int
	// WatchBuffer is each watch channel's capacity. Default 256.
	WatchBuffer int
	// MaxGroupBatches caps how many concurrent proposals share one commit.
	// Default 1024.
	MaxGroupBatches int
	// MemTableSize is Badger's memtable size. One transaction, and so the
	// largest batch, may use 15% of it. Default 32 MiB.
	MemTableSize int64
	// ValueLogFileSize is the size of one Badger value-log file, the unit
	// value-log GC reclaims. Default 64 MiB.
	ValueLogFileSize int64
	// GCInterval is how often value-log GC looks for space to reclaim.
	// Default 10m; negative disables it.
	GCInterval time.Duration
	// DiskReserve is the free space (bytes) the log keeps on its
	// filesystem: writes are refused with ErrNoSpace below it. Default
	// orderedlog.DefaultDiskReserve; negative disables the guard.
	DiskReserve int64
	// Logger receives Badger's warnings and errors and auto-compaction
	// failures; Badger's info chatter is logged at debug level.
	// Default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = 200 * time.Millisecond
	}
	if o.KeepEntries == 0 {
		o.KeepEntries = 100000
	}
	if o.RecentBatches <= 0 {
		o.RecentBatches = 4096
	}
	if o.WatchBuffer <= 0 {
		o.WatchBuffer = 256
	}
	if o.MaxGroupBatches <= 0 {
		o.MaxGroupBatches = 1024
	}
	if o.MemTableSize <= 0 {
		o.MemTableSize = 32 << 20
	}
	if o.ValueLogFileSize <= 0 {
		o.ValueLogFileSize = 64 << 20
	}
	if o.GCInterval == 0 {
		o.GCInterval = 10 * time.Minute
	}
	if o.DiskReserve == 0 {
		o.DiskReserve = orderedlog.DefaultDiskReserve
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Log is the single-node Log, stored in one Badger directory.
//
// All writes go through one committer goroutine: it takes every proposal
// waiting at that moment, applies them in order inside one Badger
// transaction (each batch sees the batches before it), and commits them with
// one fsync. Watchers never get anything pushed at them; they follow the
// published tail and pull batches from an in-memory ring of recent batches
// or, once they fall behind it, from disk, so a slow watcher costs Propose
// nothing.
type Log struct {
	db    *badgerdb.DB
	opts  Options
	space *orderedlog.DiskGuard

	proposals chan *proposal // unbuffered: a send succeeding means the committer owns it
	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error
	committed chan struct{} // closed when the committer has exited
	wg        sync.WaitGroup

	// life is held shared by every operation that touches db from outside
	// the committer, so Close can wait for them before closing db.
	life   sync.RWMutex
	closed bool

	// Owned by the committer goroutine.
	tail   uint64
	inTxn  []*proposal // accepted into the open transaction, in seq order
	failed error       // set by a failed commit; the log then refuses writes

	published atomic.Uint64    // last durable seq visible to readers
	notify    *follow.Notifier // woken after each group commit
	floor     atomic.Uint64
	ring      *follow.Ring // recent batches, up to published

	compactMu   sync.Mutex
	compactWake chan struct{}
}

var _ orderedlog.Log = (*Log)(nil)

type proposal struct {
	ops   []orderedlog.Op // the caller's ops, only read
	own   []orderedlog.Op // ops with values aliasing enc, for the committed Batch
	enc   []byte          // encoded log entry
	seq   uint64
	batch *orderedlog.Batch
	err   error
	done  chan struct{}
}

// Open opens (creating if needed) the log stored in dir and recovers
// its tail and compaction floor.
func Open(dir string, opts Options) (*Log, error) {
	opts = opts.withDefaults()
	logmetrics.Register(opts.Logger, groupBatches)
	if err := removeUnbornFiles(dir, opts.Logger); err != nil {
		return nil, err
	}
	bo := badgerdb.DefaultOptions(dir).
		WithSyncWrites(true).
		// The committer (state, new entries, tail) and Compact (old
		// entries, floor) never write the same keys, so Badger's conflict
		// tracking would only cost time.
		WithDetectConflicts(false).
		WithMemTableSize(opts.MemTableSize).
		// Badger refuses thresholds above its transaction size (15% of
		// the memtable), which small memtables would otherwise hit.
		WithValueThreshold(min(1<<20, opts.MemTableSize*15/100)).
		WithNumMemtables(3).
		WithBlockCacheSize(32 << 20).
		WithValueLogFileSize(opts.ValueLogFileSize).
		WithNumCompactors(2).
		WithMetricsEnabled(false).
		WithLogger(badgerLogger{opts.Logger})
	db, err := badgerdb.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("orderedlog: opening badger in %s: %w", dir, err)
	}
	l := &Log{
		db:          db,
		opts:        opts,
		proposals:   make(chan *proposal),
		closing:     make(chan struct{}),
		committed:   make(chan struct{}),
		notify:      follow.NewNotifier(),
		compactWake: make(chan struct{}, 1),
		space:       orderedlog.NewDiskGuard(dir, uint64(max(opts.DiskReserve, 0)), opts.Logger),
	}
	if err := l.recover(); err != nil {
		db.Close()
		return nil, fmt.Errorf("orderedlog: recovering %s: %w", dir, err)
	}
	go l.commitLoop()
	if opts.KeepEntries > 0 {
		l.wg.Add(1)
		go l.compactLoop()
	}
	if opts.GCInterval > 0 {
		l.wg.Add(1)
		go l.gcLoop()
	}
	return l, nil
}

// removeUnbornFiles deletes empty value-log and memtable files. Badger
// creates such files (on every open, and at each memtable rotation) and sizes
// them in a separate step; a crash in between leaves a zero-length file that
// Badger v4.9 then refuses to open ("Create a new file"), bricking the node.
// Such a file never held a byte, so nothing can refer to it.
func removeUnbornFiles(dir string, logger *slog.Logger) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("orderedlog: reading %s: %w", dir, err)
	}
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); !e.Type().IsRegular() || ext != ".vlog" && ext != ".mem" {
			continue
		}
		info, err := e.Info()
		if err != nil || info.Size() != 0 {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("orderedlog: removing empty %s left by a crash: %w", path, err)
		}
		logger.Warn("orderedlog removed an empty file left by a crash during open", "path", path)
	}
	return nil
}

func (l *Log) recover() error {
	return l.db.View(func(txn *badgerdb.Txn) error {
		tail, err := readUint(txn, metaTail)
		if err != nil {
			return err
		}
		floor, err := readUint(txn, metaFloor)
		if err != nil {
			return err
		}
		// The last entry must be the tail unless compaction removed
		// everything; anything else means the directory was tampered with.
		it := txn.NewIterator(badgerdb.IteratorOptions{Prefix: []byte{nsLog}, Reverse: true})
		defer it.Close()
		var last uint64
		if it.Seek([]byte{nsLog, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}); it.Valid() {
			last = binary.BigEndian.Uint64(it.Item().Key()[1:])
		}
		if floor > tail || (last != tail && !(last <= floor && tail == floor)) {
			return fmt.Errorf("inconsistent metadata: tail %d, floor %d, last entry %d; restore the data directory from a backup", tail, floor, last)
		}
		l.tail = tail
		l.published.Store(tail)
		l.floor.Store(floor)
		l.ring = follow.NewRing(l.opts.RecentBatches, tail)
		return nil
	})
}

func stateKey(key string) []byte {
	k := make([]byte, 1+len(key))
	k[0] = nsState
	copy(k[1:], key)
	return k
}

func logKey(seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = nsLog
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

func uintValue(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func readUint(txn *badgerdb.Txn, key []byte) (uint64, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badgerdb.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var v uint64
	err = item.Value(func(b []byte) error {
		if len(b) != 8 {
			return fmt.Errorf("metadata %q has %d bytes, want 8", key, len(b))
		}
		v = binary.BigEndian.Uint64(b)
		return nil
	})
	return v, err
}

// decodeState splits a stored state value into its revision and the user's
// value; the value aliases v.
func decodeState(v []byte) (uint64, []byte, error) {
	rev, n := binary.Uvarint(v)
	if n <= 0 {
		return 0, nil, errors.New("orderedlog: corrupt state value; restore the data directory from a backup")
	}
	return rev, v[n:], nil
}

// Propose appends ops as one atomic batch and returns its seq once it is
// durable. Every precondition is evaluated against the state before the
// batch; ops then apply in order, so a later op on the same key wins.
//
// ctx is honoured until the committer takes the proposal. After that Propose
// waits for the outcome (one commit at most), so an error other than a
// failed disk commit always means nothing was applied.
func (l *Log) Propose(ctx context.Context, ops []orderedlog.Op) (uint64, error) {
	start := time.Now()
	if err := orderedlog.Validate(ops); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	p := &proposal{ops: ops, done: make(chan struct{})}
	p.enc, p.own = codec.Encode(ops)
	select {
	case l.proposals <- p:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-l.closing:
		return 0, orderedlog.ErrClosed
	}
	<-p.done
	if p.err == nil {
		logmetrics.ProposeSeconds.Observe(time.Since(start).Seconds())
	}
	return p.seq, p.err
}

func (l *Log) commitLoop() {
	defer close(l.committed)
	group := make([]*proposal, 0, l.opts.MaxGroupBatches)
	for {
		// Closing wins over waiting proposers, which see it too and give up.
		select {
		case <-l.closing:
			return
		default:
		}
		select {
		case p := <-l.proposals:
			group = append(group[:0], p)
		case <-l.closing:
			return
		}
		// Let the proposers answered by the last commit run and queue up
		// again before the group is cut; otherwise a steady set of
		// proposers splits into two half-size groups taking turns.
		runtime.Gosched()
	collect:
		for len(group) < cap(group) {
			select {
			case p := <-l.proposals:
				group = append(group, p)
			default:
				break collect
			}
		}
		l.commitGroup(group)
		clear(group)
	}
}

// commitGroup applies the group in order in as few transactions as Badger's
// size limits allow, then answers every proposer.
func (l *Log) commitGroup(group []*proposal) {
	before := l.tail
	defer func() {
		for _, p := range group {
			close(p.done)
		}
		// Watchers are woken after the proposers on purpose: the goroutine
		// readied last runs first on this P, so watchers (DNS, proxy) see a
		// batch no later than its writer's acknowledgement. A watcher
		// loads the notify channel before the tail, so it either sees the
		// new tail or is woken here.
		if l.tail != before {
			l.notify.Wake()
		}
	}()
	if l.failed != nil {
		for _, p := range group {
			p.err = l.failed
		}
		return
	}
	if err := l.space.Check(groupBytes(group)); err != nil {
		for _, p := range group {
			p.err = err
		}
		return
	}
	now := time.Now()
	txn := l.db.NewTransaction(true)
	l.inTxn = l.inTxn[:0]
	for i := 0; i < len(group); {
		p := group[i]
		err := l.apply(txn, p, l.tail+uint64(len(l.inTxn))+1, now)
		var conflict *orderedlog.ConflictError
		switch {
		case err == nil:
			l.inTxn = append(l.inTxn, p)
			i++
			continue
		case errors.As(err, &conflict):
			// Preconditions are checked before anything is written, so
			// the transaction holds nothing of p.
			logmetrics.Conflicts.Inc()
			p.err = err
			i++
			continue
		}
		// p may be half-written into txn, and Badger cannot roll back part
		// of a transaction: rebuild it from the batches accepted so far,
		// commit those, and retry p in a fresh transaction of its own.
		txn.Discard()
		if len(l.inTxn) == 0 {
			if errors.Is(err, badgerdb.ErrTxnTooBig) {
				p.err = fmt.Errorf("%w (%d ops)", ErrBatchTooLarge, len(p.ops))
			} else {
				p.err = fmt.Errorf("orderedlog: applying batch: %w", err)
			}
			i++
		} else {
			txn = l.db.NewTransaction(true)
			for _, q := range l.inTxn {
				if err := l.apply(txn, q, q.seq, now); err != nil {
					// The same ops on the same state just fit; this is
					// unreachable unless Badger changed underneath.
					l.fail(err)
					break
				}
			}
			l.commit(txn)
			if l.failed != nil {
				for _, q := range group[i:] {
					q.err = l.failed
				}
				return
			}
		}
		txn = l.db.NewTransaction(true)
	}
	l.commit(txn)
}

// apply writes p into txn as batch seq, or returns a *ConflictError having
// written nothing.
func (l *Log) apply(txn *badgerdb.Txn, p *proposal, seq uint64, now time.Time) error {
	for i, op := range p.ops {
		if !op.HasPrecondition {
			continue
		}
		rev, err := currentRev(txn, op.Key)
		if err != nil {
			return err
		}
		if rev != op.Rev {
			return &orderedlog.ConflictError{Key: op.Key, WantRev: op.Rev, ActualRev: rev, BatchOpIdx: i}
		}
	}
	for _, op := range p.ops {
		var err error
		switch op.Type {
		case orderedlog.OpPut:
			v := make([]byte, 0, binary.MaxVarintLen64+len(op.Value))
			v = binary.AppendUvarint(v, seq)
			err = txn.Set(stateKey(op.Key), append(v, op.Value...))
		case orderedlog.OpDelete:
			err = txn.Delete(stateKey(op.Key))
		}
		if err != nil {
			return err
		}
	}
	codec.StampTime(p.enc, now)
	if err := txn.Set(logKey(seq), p.enc); err != nil {
		return err
	}
	if err := txn.Set(metaTail, uintValue(seq)); err != nil {
		return err
	}
	p.seq = seq
	p.batch = &orderedlog.Batch{Seq: seq, Time: now, Ops: p.own}
	return nil
}

func currentRev(txn *badgerdb.Txn, key string) (uint64, error) {
	item, err := txn.Get(stateKey(key))
	if errors.Is(err, badgerdb.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var rev uint64
	err = item.Value(func(v []byte) error {
		var err error
		rev, _, err = decodeState(v)
		return err
	})
	return rev, err
}

// commit makes l.inTxn durable and visible, or fails the log.
func (l *Log) commit(txn *badgerdb.Txn) {
	defer txn.Discard()
	accepted := l.inTxn
	l.inTxn = l.inTxn[:0]
	if len(accepted) == 0 {
		return
	}
	if l.failed == nil {
		if err := txn.Commit(); err != nil {
			l.fail(err)
		}
	}
	if l.failed != nil {
		for _, p := range accepted {
			p.seq, p.batch, p.err = 0, nil, l.failed
		}
		return
	}
	groupBatches.Observe(float64(len(accepted)))
	l.tail = accepted[len(accepted)-1].seq

	for _, p := range accepted {
		l.ring.Push(p.batch)
	}

	// Published before any proposer is answered, so Tail, Get and List
	// reflect a batch once its Propose has returned.
	l.published.Store(l.tail)

	if keep := uint64(l.opts.KeepEntries); l.opts.KeepEntries > 0 && l.tail-l.floor.Load() > keep+keep/10 {
		select {
		case l.compactWake <- struct{}{}:
		default:
		}
	}
}

// fail records a commit failure. Badger's state after one is not something
// to keep writing on; the operator has to look at the disk and reopen.
func (l *Log) fail(cause error) {
	if l.failed == nil {
		l.failed = fmt.Errorf("orderedlog: commit failed, the log refuses writes until reopened: %w", cause)
		l.opts.Logger.Error("orderedlog commit failed", "err", cause)
	}
}

// enter makes a read or compaction safe against Close; the caller must call
// l.life.RUnlock when it returns nil.
func (l *Log) enter() error {
	l.life.RLock()
	if l.closed {
		l.life.RUnlock()
		return orderedlog.ErrClosed
	}
	return nil
}

// Get returns key's value and revision, and the seq the read reflects.
func (l *Log) Get(ctx context.Context, key string) (orderedlog.KV, bool, uint64, error) {
	if err := ctx.Err(); err != nil {
		return orderedlog.KV{}, false, 0, err
	}
	if err := l.enter(); err != nil {
		return orderedlog.KV{}, false, 0, err
	}
	defer l.life.RUnlock()
	var (
		kv    orderedlog.KV
		found bool
		seq   uint64
	)
	err := l.db.View(func(txn *badgerdb.Txn) error {
		var err error
		if seq, err = readUint(txn, metaTail); err != nil {
			return err
		}
		item, err := txn.Get(stateKey(key))
		if errors.Is(err, badgerdb.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return item.Value(func(v []byte) error {
			rev, val, err := decodeState(v)
			kv = orderedlog.KV{Key: key, Value: bytes.Clone(val), Rev: rev}
			return err
		})
	})
	if err != nil {
		return orderedlog.KV{}, false, 0, fmt.Errorf("orderedlog: get %q: %w", key, err)
	}
	return kv, found, seq, nil
}

// List returns every key under prefix in key order; "" lists every key.
func (l *Log) List(ctx context.Context, prefix string) ([]orderedlog.KV, uint64, error) {
	return orderedlog.ListAll(ctx, l, prefix)
}

func (l *Log) ListFunc(ctx context.Context, prefix string, fn func(orderedlog.KV) error) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := l.enter(); err != nil {
		return 0, err
	}
	defer l.life.RUnlock()
	var seq uint64
	n := 0
	err := l.db.View(func(txn *badgerdb.Txn) error {
		var err error
		if seq, err = readUint(txn, metaTail); err != nil {
			return err
		}
		it := txn.NewIterator(badgerdb.IteratorOptions{Prefix: stateKey(prefix), PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if n++; n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			item := it.Item()
			err := item.Value(func(v []byte) error {
				rev, val, err := decodeState(v)
				if err != nil {
					return err
				}
				return fn(orderedlog.KV{Key: string(item.Key()[1:]), Value: val, Rev: rev})
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("orderedlog: list %q: %w", prefix, err)
	}
	return seq, nil
}

// Tail is the seq of the last durable batch.
func (l *Log) Tail() uint64 { return l.published.Load() }

// Watch implements Log.Watch. Batches are read from the in-memory ring while
// the watcher keeps up and from disk when it does not, so the watcher, not
// the log, absorbs its slowness.
func (l *Log) Watch(ctx context.Context, from uint64) (<-chan orderedlog.Event, error) {
	if err := l.enter(); err != nil {
		return nil, err
	}
	defer l.life.RUnlock()
	if from == 0 {
		from = l.published.Load() + 1
	}
	ch := make(chan orderedlog.Event, l.opts.WatchBuffer)
	l.wg.Add(1)
	go l.watch(ctx, from, ch)
	return ch, nil
}

func (l *Log) watch(ctx context.Context, next uint64, ch chan<- orderedlog.Event) {
	defer l.wg.Done()
	defer close(ch)
	follow.Serve(ctx, l.closing, watchSource{l}, next, l.opts.HeartbeatInterval, ch)
}

// watchSource is what follow.Serve sees of the log.
type watchSource struct{ l *Log }

func (w watchSource) Tail() uint64             { return w.l.published.Load() }
func (w watchSource) Floor() uint64            { return w.l.floor.Load() }
func (w watchSource) Changed() <-chan struct{} { return w.l.notify.Wait() }
func (w watchSource) Heartbeat() orderedlog.Event {
	return orderedlog.Event{Tail: w.l.published.Load()}
}
func (w watchSource) Batches(from, to uint64, buf []*orderedlog.Batch) ([]*orderedlog.Batch, error) {
	return w.l.batches(from, to, buf)
}

// batches appends batches from..to (to <= published tail) to buf.
func (l *Log) batches(from, to uint64, buf []*orderedlog.Batch) ([]*orderedlog.Batch, error) {
	if got, ok := l.ring.Get(from, to, buf); ok {
		return got, nil
	}
	if err := l.enter(); err != nil {
		return buf, err
	}
	defer l.life.RUnlock()
	err := l.db.View(func(txn *badgerdb.Txn) error {
		floor, err := readUint(txn, metaFloor)
		if err != nil {
			return err
		}
		if from <= floor {
			return orderedlog.ErrCompacted
		}
		it := txn.NewIterator(badgerdb.IteratorOptions{
			Prefix:         []byte{nsLog},
			PrefetchValues: true,
			PrefetchSize:   int(min(to-from+1, 100)),
		})
		defer it.Close()
		want := from
		for it.Seek(logKey(from)); it.Valid() && want <= to; it.Next() {
			item := it.Item()
			if seq := binary.BigEndian.Uint64(item.Key()[1:]); seq != want {
				return fmt.Errorf("%w %d: missing (next is %d)", codec.ErrCorrupt, want, seq)
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			b, err := codec.Decode(want, v)
			if err != nil {
				return err
			}
			buf = append(buf, b)
			want++
		}
		if want <= to {
			return fmt.Errorf("%w %d: missing", codec.ErrCorrupt, want)
		}
		return nil
	})
	if err != nil && !errors.Is(err, orderedlog.ErrCompacted) {
		err = fmt.Errorf("orderedlog: reading log from %d: %w", from, err)
	}
	return buf, err
}

// Compact deletes log entries with Seq <= upTo. It works in chunks, each
// deleting its entries and raising the recorded floor in one transaction, so
// a crash leaves exactly the entries above the floor.
func (l *Log) Compact(ctx context.Context, upTo uint64) error {
	if err := l.enter(); err != nil {
		return err
	}
	defer l.life.RUnlock()
	l.compactMu.Lock()
	defer l.compactMu.Unlock()
	if tail := l.published.Load(); upTo > tail {
		return fmt.Errorf("orderedlog: cannot compact up to %d, the tail is %d", upTo, tail)
	}
	const chunk = 1000
	for floor := l.floor.Load(); floor < upTo; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.closing:
			return orderedlog.ErrClosed
		default:
		}
		end := min(upTo, floor+chunk)
		err := l.db.Update(func(txn *badgerdb.Txn) error {
			for s := floor + 1; s <= end; s++ {
				if err := txn.Delete(logKey(s)); err != nil {
					return err
				}
			}
			return txn.Set(metaFloor, uintValue(end))
		})
		if err != nil {
			return fmt.Errorf("orderedlog: compacting %d..%d: %w", floor+1, end, err)
		}
		l.floor.Store(end)
		floor = end
	}
	return nil
}

func (l *Log) compactLoop() {
	defer l.wg.Done()
	keep := uint64(l.opts.KeepEntries)
	for {
		select {
		case <-l.closing:
			return
		case <-l.compactWake:
		}
		if tail := l.published.Load(); tail > keep {
			if err := l.Compact(context.Background(), tail-keep); err != nil && !errors.Is(err, orderedlog.ErrClosed) {
				l.opts.Logger.Error("orderedlog auto-compaction failed", "err", err)
			}
		}
	}
}

// Close stops the committer (pending proposals get ErrClosed), ends every
// watch and closes the database. Later calls return the first call's result.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		close(l.closing)
		l.life.Lock()
		l.closed = true
		l.life.Unlock()
		<-l.committed
		l.wg.Wait()
		l.closeErr = l.db.Close()
	})
	return l.closeErr
}

// badgerLogger routes Badger's logging into slog.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) log(level slog.Level, format string, args []any) {
	if b.l.Enabled(context.Background(), level) {
		b.l.Log(context.Background(), level, "badger: "+string(bytes.TrimSpace(fmt.Appendf(nil, format, args...))))
	}
}

func (b badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a) }
func (b badgerLogger) Infof(f string, a ...any)    { b.log(slog.LevelDebug, f, a) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug, f, a) }
