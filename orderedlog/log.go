// Package orderedlog is the seam every networking write goes through: a totally
// ordered, durable log of atomic batches of key operations, plus the key/value
// state those batches produce. This package holds only the interface and its
// types; the backends live below it (orderedlog/badger on one machine, a
// replicated one next to it), so no subsystem depends on how, or where, a
// backend stores things, and nothing outside orderedlog/ imports a storage or
// consensus library (scripts/check_orderedlog_seam.sh).
package orderedlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"
)

// Key prefixes. Writes under these go through Propose only; the seam check
// (scripts/check_orderedlog_seam.sh) enforces it.
const (
	PrefixNetwork        = "network/"
	PrefixServices       = "services/"
	PrefixEndpoints      = "endpoints/"
	PrefixLocalInstances = "local_instances/"
	PrefixPolicy         = "policy/"
	PrefixCerts          = "certs/"
	PrefixSecrets        = "secrets/"
	PrefixNodes          = "nodes/"
	// PrefixJoinTokens holds the Raft backend's join tokens: each one's
	// secret's hash and expiry, never the secret.
	PrefixJoinTokens = "join-tokens/"
)

// OpType says what an Op does to its key.
type OpType uint8

const (
	OpPut OpType = iota + 1
	OpDelete
	// OpCheck writes nothing; it only carries a precondition, so a batch can
	// depend on a key it does not change.
	OpCheck
)

func (t OpType) String() string {
	switch t {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpCheck:
		return "check"
	}
	return fmt.Sprintf("op(%d)", uint8(t))
}

// Op is one key operation inside a batch.
type Op struct {
	Type  OpType
	Key   string
	Value []byte // OpPut only

	// When HasPrecondition is set the whole batch applies only if the key's
	// current revision equals Rev (0 means "the key must not exist").
	HasPrecondition bool
	Rev             uint64
}

// Put, Delete and Check build Ops; the *If variants add a revision precondition.
func Put(key string, value []byte) Op { return Op{Type: OpPut, Key: key, Value: value} }
func Delete(key string) Op            { return Op{Type: OpDelete, Key: key} }
func PutIf(key string, value []byte, rev uint64) Op {
	return Op{Type: OpPut, Key: key, Value: value, HasPrecondition: true, Rev: rev}
}
func DeleteIf(key string, rev uint64) Op {
	return Op{Type: OpDelete, Key: key, HasPrecondition: true, Rev: rev}
}
func Check(key string, rev uint64) Op {
	return Op{Type: OpCheck, Key: key, HasPrecondition: true, Rev: rev}
}

// Batch is one committed log entry. Seq starts at 1 and has no gaps.
type Batch struct {
	Seq  uint64
	Time time.Time // commit time, for delivery-latency measurement
	Ops  []Op
}

// KV is a key's current value; Rev is the Seq of the batch that last wrote it.
type KV struct {
	Key   string
	Value []byte
	Rev   uint64
}

// Event is what a watcher receives: a batch, or a heartbeat (Batch nil) that
// tells the log's tail so the watcher can measure its lag while nothing is
// written. Err is set once, as the last event, when the watch ends abnormally
// (ErrCompacted: the requested history is gone, re-list and watch again).
// A Batch may be shared by every watcher of the log: treat it as read-only.
type Event struct {
	Batch *Batch
	Tail  uint64
	Err   error
	// SinceLeader is, on a replicated log, how long ago this node last heard
	// from a leader (zero on the leader itself and on a single-node log). A
	// node cut off from the majority keeps applying and beating locally, so
	// its Tail says nothing about the cluster; this is what tells its
	// consumers they are falling behind.
	SinceLeader time.Duration
}

var (
	// ErrConflict: a precondition did not hold; nothing of the batch was applied.
	ErrConflict = errors.New("orderedlog: precondition failed")
	// ErrCompacted: a watch asked for history that compaction removed.
	ErrCompacted = errors.New("orderedlog: requested history was compacted; re-list and watch from the listed seq+1")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("orderedlog: closed")
	// ErrOutcomeUnknown: a replicated log could not learn whether a proposal
	// was committed before its retry window ran out (a leader change, a lost
	// connection). It may or may not be applied; read the state and retry.
	ErrOutcomeUnknown = errors.New("orderedlog: outcome unknown, retry")
	// ErrUnavailable: a replicated log reached no leader within its retry
	// window (this node is cut off from the majority); nothing was applied.
	ErrUnavailable = errors.New("orderedlog: no leader reachable; nothing was applied")
)

// ConflictError names the key whose precondition failed.
type ConflictError struct {
	Key        string
	WantRev    uint64
	ActualRev  uint64
	BatchOpIdx int
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("orderedlog: precondition failed on %q: want revision %d, have %d", e.Key, e.WantRev, e.ActualRev)
}

func (e *ConflictError) Unwrap() error { return ErrConflict }

// Proposer is what a writer needs.
type Proposer interface {
	// Propose appends one atomic batch and returns its seq once it is durable.
	// If any precondition fails nothing is applied and the error wraps
	// ErrConflict (as *ConflictError). While the store's disk is below its
	// free-space reserve nothing is applied and the error wraps ErrNoSpace
	// (see DiskGuard). Concurrent proposals may be committed together, but
	// each keeps its own seq.
	Propose(ctx context.Context, ops []Op) (uint64, error)
}

// Lister is a consistent listing of the state.
type Lister interface {
	// ListFunc streams a listing of every key under prefix to fn, in key
	// order, consistent as of the returned seq; an error from fn stops it.
	// KV.Value is only valid during the call. A cold start reads the whole
	// store this way while it decodes, instead of holding it all twice.
	ListFunc(ctx context.Context, prefix string, fn func(KV) error) (uint64, error)
}

// Watcher follows the log.
type Watcher interface {
	// Watch delivers every batch with Seq >= from, in order, then follows new
	// ones, interleaved with heartbeats. from == 0 means "from the current
	// tail + 1" (only new batches). The channel closes when ctx ends, the log
	// closes, or after an Err event.
	Watch(ctx context.Context, from uint64) (<-chan Event, error)
}

// Follower is what a materialized view of the log needs: list once, then
// watch from the listed seq + 1 (and list again after ErrCompacted). It is
// also all a remote process gets over runed's watch API.
type Follower interface {
	Lister
	Watcher
}

// Reader reads the applied state.
type Reader interface {
	Lister

	// Get returns a key's current value, whether it exists, and the seq the
	// read reflects.
	Get(ctx context.Context, key string) (KV, bool, uint64, error)

	// List returns every key under prefix, in key order, consistent as of the
	// returned seq.
	List(ctx context.Context, prefix string) ([]KV, uint64, error)

	// Tail is the seq of the last committed batch (0 for an empty log).
	Tail() uint64
}

// Log is the seam: everything a backend provides. Implementations must be
// safe for concurrent use.
type Log interface {
	Proposer
	Reader
	Watcher

	// Compact drops log entries with Seq <= upTo (the key/value state stays).
	Compact(ctx context.Context, upTo uint64) error

	Close() error
}

// ListAll is List in terms of ListFunc, for backends: every key under
// prefix with its value copied, and the seq the listing reflects.
func ListAll(ctx context.Context, l Lister, prefix string) ([]KV, uint64, error) {
	var kvs []KV
	seq, err := l.ListFunc(ctx, prefix, func(kv KV) error {
		kv.Value = bytes.Clone(kv.Value)
		kvs = append(kvs, kv)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return kvs, seq, nil
}
