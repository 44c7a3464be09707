package raft

import (
	"context"
	"errors"
	"fmt"
	"time"

	hraft "github.com/hashicorp/raft"
)

// membershipTimeout bounds one configuration change when ctx has no deadline.
const membershipTimeout = 10 * time.Second

func timeoutOf(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d)
	}
	return membershipTimeout
}

// ErrNotLeader: a membership change was asked of a node that does not lead.
var ErrNotLeader = errors.New("orderedlog/raft: this node is not the leader")

func membershipErr(what string, err error) error {
	if errors.Is(err, hraft.ErrNotLeader) {
		return fmt.Errorf("%s: %w", what, ErrNotLeader)
	}
	return fmt.Errorf("orderedlog/raft: %s: %w", what, err)
}

// AddVoter makes the node id, reachable at addr, a voter. Only the leader
// can; others get ErrNotLeader.
func (l *Log) AddVoter(ctx context.Context, id, addr string) error {
	if err := l.raft.AddVoter(hraft.ServerID(id), hraft.ServerAddress(addr), 0, timeoutOf(ctx)).Error(); err != nil {
		return membershipErr("adding voter "+id, err)
	}
	return nil
}

// RemoveServer removes the node id from the cluster. Only the leader can.
func (l *Log) RemoveServer(ctx context.Context, id string) error {
	if err := l.raft.RemoveServer(hraft.ServerID(id), 0, timeoutOf(ctx)).Error(); err != nil {
		return membershipErr("removing "+id, err)
	}
	return nil
}

// Leader returns the current leader's ID and address as this node knows
// them ("" when it knows none).
func (l *Log) Leader() (id, addr string) {
	a, i := l.raft.LeaderWithID()
	return string(i), string(a)
}

// State is this node's Raft state: Leader, Follower, Candidate or Shutdown.
func (l *Log) State() string { return l.raft.State().String() }
