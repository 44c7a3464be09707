package raft

import (
	"encoding/binary"
	"log/slog"
	"sync/atomic"

	iradix "github.com/hashicorp/go-immutable-radix"
	hraft "github.com/hashicorp/raft"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/internal/codec"
	"github.com/runenet/runenet/orderedlog/internal/follow"
)

// kvEntry is a key's value and the seq of the batch that last wrote it.
type kvEntry struct {
	value []byte
	rev   uint64
}

// outcome is what applying one command produced. The FSM keeps it per
// request id, so a proposal retried after a leader change gets its first
// outcome back instead of being applied twice.
type outcome struct {
	n        uint64 // the request's place in the dedup window
	seq      uint64 // the batch's seq; 0 if nothing was applied
	index    uint64 // the Raft index of the command
	conflict *orderedlog.ConflictError
	err      error // a command this node cannot decode (never stored)
}

// state is one immutable version of the state machine. Readers take the
// current one with an atomic load and see a consistent state and its seq
// without locking; a snapshot is a pointer to one.
type state struct {
	kv    *iradix.Tree // user key → *kvEntry
	ids   *iradix.Tree // request id → *outcome
	order *iradix.Tree // 8-byte big-endian n → request id, oldest first
	seq   uint64       // batches applied: the seq of the last one
	index uint64       // the last Raft index applied
	n     uint64       // requests seen so far: the next request's n
	kept  int          // requests in the window
}

func emptyState() *state {
	return &state{kv: iradix.New(), ids: iradix.New(), order: iradix.New()}
}

// fsm is the replicated state machine: the key/value state, the seq counter
// and the dedup window. hashicorp/raft calls Apply, Snapshot and Restore
// from one goroutine; everything else only reads cur.
type fsm struct {
	window int // request ids remembered
	logger *slog.Logger

	cur    atomic.Pointer[state]
	ring   *follow.Ring     // recent batches for watchers
	notify *follow.Notifier // woken after each apply
	floor  atomic.Uint64    // watch history at or below this is gone
}

var _ hraft.BatchingFSM = (*fsm)(nil)

func newFSM(window, recent int, logger *slog.Logger) *fsm {
	f := &fsm{window: window, logger: logger, ring: follow.NewRing(recent, 0), notify: follow.NewNotifier()}
	f.cur.Store(emptyState())
	return f
}

func (f *fsm) Apply(l *hraft.Log) any { return f.ApplyBatch([]*hraft.Log{l})[0] }

// ApplyBatch applies committed entries in order and publishes the result
// once, so readers and watchers see a burst of writes as one step.
func (f *fsm) ApplyBatch(logs []*hraft.Log) []any {
	cur := f.cur.Load()
	next := *cur
	a := applier{st: &next, kv: cur.kv.Txn(), ids: cur.ids.Txn(), order: cur.order.Txn(), window: f.window}
	res := make([]any, len(logs))
	var batches []*orderedlog.Batch
	for i, l := range logs {
		next.index = max(next.index, l.Index)
		if l.Type != hraft.LogCommand {
			continue
		}
		o, b := a.apply(l)
		if o.err != nil {
			// Every node sees the same bytes and skips them alike.
			f.logger.Error("orderedlog/raft: skipping a log command", "index", l.Index, "err", o.err)
		}
		if b != nil {
			batches = append(batches, b)
		}
		res[i] = o
	}
	next.kv, next.ids, next.order = a.kv.CommitOnly(), a.ids.CommitOnly(), a.order.CommitOnly()
	if len(batches) > 0 {
		f.ring.Push(batches...)
	}
	f.cur.Store(&next)
	f.notify.Wake()
	return res
}

// applier applies commands into transactions on one state.
type applier struct {
	st             *state
	kv, ids, order *iradix.Txn
	window         int
}

func (a *applier) apply(l *hraft.Log) (*outcome, *orderedlog.Batch) {
	id, enc, err := decodeCommand(l.Data)
	if err != nil {
		return &outcome{index: l.Index, err: err}, nil
	}
	if prev, ok := a.ids.Get(id[:]); ok {
		return prev.(*outcome), nil
	}
	o := &outcome{n: a.st.n, index: l.Index}
	b, err := codec.Decode(a.st.seq+1, enc)
	if err != nil {
		return &outcome{index: l.Index, err: err}, nil
	}
	if o.conflict = a.check(b.Ops); o.conflict == nil {
		for _, op := range b.Ops {
			switch op.Type {
			case orderedlog.OpPut:
				a.kv.Insert([]byte(op.Key), &kvEntry{value: op.Value, rev: b.Seq})
			case orderedlog.OpDelete:
				a.kv.Delete([]byte(op.Key))
			}
		}
		a.st.seq = b.Seq
		o.seq = b.Seq
	} else {
		b = nil
	}
	a.remember(id, o)
	return o, b
}

// check evaluates every precondition against the state before the batch.
func (a *applier) check(ops []orderedlog.Op) *orderedlog.ConflictError {
	for i, op := range ops {
		if !op.HasPrecondition {
			continue
		}
		var rev uint64
		if v, ok := a.kv.Get([]byte(op.Key)); ok {
			rev = v.(*kvEntry).rev
		}
		if rev != op.Rev {
			return &orderedlog.ConflictError{Key: op.Key, WantRev: op.Rev, ActualRev: rev, BatchOpIdx: i}
		}
	}
	return nil
}

// remember records a request's outcome and forgets the oldest beyond the
// window. The window counts requests, so every node forgets the same ones.
func (a *applier) remember(id requestID, o *outcome) {
	a.ids.Insert(id[:], o)
	a.order.Insert(orderKey(o.n), id)
	a.st.n++
	a.st.kept++
	for ; a.st.kept > a.window; a.st.kept-- {
		k, old, _ := a.order.Root().Minimum()
		oldID := old.(requestID)
		a.order.Delete(k)
		a.ids.Delete(oldID[:])
	}
}

func orderKey(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// applied is the state as of now.
func (f *fsm) applied() *state { return f.cur.Load() }
