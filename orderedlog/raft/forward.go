package raft

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/internal/codec"
)

// Forwarded requests are a kind byte and a body; replies a status byte and
// a body.
const (
	forwardPropose byte = 1 // body: a log command; reply body: an outcome
	forwardSync    byte = 2 // body: none; reply body: the leader's applied seq and index
	// Membership changes, done by the leader; reply body: an outcome
	// carrying the configuration entry's index.
	forwardAddNonvoter byte = 3 // body: id, address
	forwardRemove      byte = 4 // body: id
	// forwardStatus asks any node for its progress (promote.go); reply
	// body: its applied Raft index and time since it last knew a leader.
	forwardStatus byte = 5
)

const (
	replyApplied   byte = 1 // the command committed (or conflicted); body: outcome
	replyNotLeader byte = 2 // nothing was submitted; body: message
	replyUnknown   byte = 3 // submitted, outcome unknown; body: message
	replyRejected  byte = 4 // a request the leader cannot take, ever; body: refusal code, message
)

// errRejected: the leader refused the request itself; retrying cannot help.
var errRejected = errors.New("refused by the leader")

// errMaybeSubmitted marks a failed attempt that may still commit: the retry
// must reuse the request id, and giving up means "outcome unknown".
var errMaybeSubmitted = errors.New("may have been submitted")

// errNotLeader: the node asked is not (or no longer) the leader; nothing was
// submitted.
var errNotLeader = errors.New("not the leader")

// errLeaderChanged ends a forward whose leader this node no longer follows.
var errLeaderChanged = errors.New("this node's leader changed")

// submit has the current leader do a request: this node when it leads,
// else the leader it knows, by forwarding.
//
// One forward lasts at most forwardTimeout (Raft's heartbeat plus election
// timeout) and ends early when this node's known leader changes: across a
// partition the dial, or the wait for the reply, would otherwise hang until
// timeout (the whole retry window) while a new leader is elected within
// seconds. A forward cut short after its request went out may still commit;
// the retry reuses the request id, so it applies at most once.
func (l *Log) submit(ctx context.Context, kind byte, body []byte, timeout time.Duration) (*outcome, error) {
	if l.raft.State() == hraft.Leader {
		return l.lead(kind, body, timeout)
	}
	changed := l.leaderChanged.Wait() // before reading the leader: no change is missed
	addr, id := l.raft.LeaderWithID()
	if addr == "" {
		return nil, fmt.Errorf("%w: no leader known", errNotLeader)
	}
	// A leader silent for a heartbeat timeout is one this node is about to
	// give up on (at its next election timer): across a partition a request
	// to it may be written to a pooled connection and never answered, an
	// outcome unknown where waiting for a leader that answers costs nothing.
	if c := l.raft.LastContact(); !c.IsZero() && time.Since(c) > l.heartbeatTimeout {
		return nil, fmt.Errorf("%w: no word from leader %s for %v", errNotLeader, id, time.Since(c).Round(time.Millisecond))
	}
	limit := min(timeout, l.forwardTimeout)
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	fctx, cancelTimeout := context.WithTimeoutCause(fctx, limit, fmt.Errorf("no reply within %v", limit))
	defer cancelTimeout()
	go func() {
		select {
		case <-changed:
			cancel(errLeaderChanged)
		case <-fctx.Done():
		}
	}()
	req := append([]byte{kind}, body...)
	reply, err := l.trans.Forward(fctx, addr, req)
	if err != nil {
		if cause := context.Cause(fctx); cause != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w (%w)", err, cause)
		}
		if errors.Is(err, ErrNotSent) {
			return nil, fmt.Errorf("forwarding to leader %s: %w", id, err)
		}
		return nil, fmt.Errorf("forwarding to leader %s: %w: %w", id, errMaybeSubmitted, err)
	}
	metrics.forwarded.Inc()
	return decodeReply(reply, id)
}

// lead does a request as the leader.
func (l *Log) lead(kind byte, body []byte, timeout time.Duration) (*outcome, error) {
	switch kind {
	case forwardSync:
		return l.syncAsLeader(timeout)
	case forwardAddNonvoter, forwardRemove:
		return l.changeAsLeader(kind, body, timeout)
	}
	return l.applyAsLeader(body, timeout)
}

// syncAsLeader commits a barrier, so this node's state machine has applied
// everything committed before it, and answers with its applied seq and
// index: a follower that reaches the index has applied as much.
func (l *Log) syncAsLeader(timeout time.Duration) (*outcome, error) {
	if err := l.wait(l.raft.Barrier(timeout), timeout); err != nil {
		if errors.Is(err, hraft.ErrNotLeader) {
			return nil, fmt.Errorf("%w: %w", errNotLeader, err)
		}
		return nil, err // a barrier applies nothing: retrying is always safe
	}
	st := l.fsm.applied()
	return &outcome{seq: st.seq, index: st.index}, nil
}

// applyAsLeader submits cmd to Raft, stamping the commit time, and waits
// for this node's state machine to apply it.
func (l *Log) applyAsLeader(cmd []byte, timeout time.Duration) (*outcome, error) {
	// Each attempt submits its own copy: Raft keeps the slice it is given.
	cmd = append([]byte(nil), cmd...)
	codec.StampTime(cmd[commandHeader:], time.Now())
	start := time.Now()
	f := l.raft.Apply(cmd, timeout)
	err := l.wait(f, timeout)
	switch {
	case err == nil:
	case errors.Is(err, hraft.ErrNotLeader), errors.Is(err, hraft.ErrLeadershipTransferInProgress), errors.Is(err, hraft.ErrEnqueueTimeout):
		return nil, fmt.Errorf("%w: %w", errNotLeader, err)
	default: // leadership lost while committing, shut down, aborted by a restore
		return nil, fmt.Errorf("%w: %w", errMaybeSubmitted, err)
	}
	metrics.applySeconds.Observe(time.Since(start).Seconds())
	o := f.Response().(*outcome)
	if o.err != nil {
		return nil, o.err
	}
	return o, nil
}

// wait waits for f at most timeout and never past Close. Raft answers
// every future eventually, except one still queued when it shuts down.
func (l *Log) wait(f hraft.Future, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("no answer from Raft within %v", timeout)
	case <-l.closing:
		return orderedlog.ErrClosed
	}
}

// serveForward answers a forwarded request on the node that received it.
func (l *Log) serveForward(ctx context.Context, req []byte) []byte {
	if len(req) == 0 {
		return rejectReply(errors.New("empty forwarded request"))
	}
	if peer, ok := peerName(ctx); ok && !l.isMember(peer) {
		// A removed node's certificate stays valid: membership is what
		// lets a node write.
		return rejectReply(fmt.Errorf("node %q is not a member of this cluster (removed?)", peer))
	}
	switch req[0] {
	case forwardStatus:
		return l.status()
	case forwardPropose:
		if _, _, err := decodeCommand(req[1:]); err != nil {
			return rejectReply(err)
		}
	case forwardSync, forwardAddNonvoter, forwardRemove:
	default:
		return rejectReply(errors.New("unknown forwarded request (mixed runed versions?)"))
	}
	if l.raft.State() != hraft.Leader {
		return append([]byte{replyNotLeader}, "not the leader"...)
	}
	timeout := l.opts.RetryWindow
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	o, err := l.lead(req[0], req[1:], timeout)
	switch {
	case err == nil:
		e := &encoder{buf: []byte{replyApplied}}
		e.outcome(o)
		return e.buf
	case errors.Is(err, errNotLeader):
		return append([]byte{replyNotLeader}, err.Error()...)
	case errors.Is(err, errRejected):
		return rejectReply(err)
	default:
		return append([]byte{replyUnknown}, err.Error()...)
	}
}

func decodeReply(reply []byte, leader hraft.ServerID) (*outcome, error) {
	if len(reply) == 0 {
		return nil, fmt.Errorf("leader %s: %w: empty reply", leader, errMaybeSubmitted)
	}
	switch reply[0] {
	case replyApplied:
		d := &decoder{r: bufio.NewReader(bytes.NewReader(reply[1:]))}
		o := d.outcome()
		d.end()
		if d.err != nil {
			return nil, fmt.Errorf("leader %s: %w: reply: %w", leader, errMaybeSubmitted, d.err)
		}
		return o, nil
	case replyNotLeader:
		return nil, fmt.Errorf("leader %s: %w: %s", leader, errNotLeader, reply[1:])
	case replyRejected:
		return nil, decodeRefusal(reply[1:], leader)
	default:
		return nil, fmt.Errorf("leader %s: %w: %s", leader, errMaybeSubmitted, reply[1:])
	}
}

// refusals are the refusals a forwarded reply carries by code (its index
// plus one), so the forwarding node's caller can tell them apart.
var refusals = []error{ErrNotMember, ErrLastVoter}

// refusal is a request refused by the leader: errRejected, and the refusal
// its code names.
type refusal struct {
	msg  string
	kind error // nil: none of refusals
}

func (r *refusal) Error() string { return r.msg }

func (r *refusal) Is(target error) bool {
	return target == errRejected || r.kind != nil && target == r.kind
}

func rejectReply(err error) []byte {
	var code byte
	for i, r := range refusals {
		if errors.Is(err, r) {
			code = byte(i + 1)
		}
	}
	return append([]byte{replyRejected, code}, strings.TrimPrefix(err.Error(), errRejected.Error()+": ")...)
}

func decodeRefusal(body []byte, leader hraft.ServerID) error {
	r := &refusal{msg: fmt.Sprintf("leader %s: %s", leader, errRejected)}
	if len(body) == 0 {
		return r
	}
	if code := int(body[0]); code >= 1 && code <= len(refusals) {
		r.kind = refusals[code-1]
	}
	r.msg += ": " + string(body[1:])
	return r
}
