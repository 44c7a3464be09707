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

// Member is one server of the Raft configuration as this node knows it.
// Only the local node's own progress is known here: hashicorp/raft keeps a
// leader's view of its followers' replication internal, so a peer's State
// is known only when it is the leader this node follows, and its Applied,
// CommitLag and LastContact never are.
type Member struct {
	ID, Address string
	Voter       bool
	// Self is the local node; only its Applied, CommitLag and LastContact
	// are set.
	Self bool
	// State is Leader, Follower, Candidate or Shutdown; "" when unknown.
	State string
	// Applied is the seq this node's state machine has applied.
	Applied uint64
	// CommitLag is how many Raft entries this node knows committed but has
	// not applied yet.
	CommitLag uint64
	// LastContact is how long ago this node last knew a leader (0 on the
	// leader).
	LastContact time.Duration
}

// Members lists the servers of the latest Raft configuration, in its order.
func (l *Log) Members() ([]Member, error) {
	f := l.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("orderedlog/raft: reading the configuration: %w", err)
	}
	leaderID, _ := l.Leader()
	st := l.fsm.applied()
	var out []Member
	for _, s := range f.Configuration().Servers {
		m := Member{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == hraft.Voter}
		switch {
		case s.ID == hraft.ServerID(l.opts.NodeID):
			m.Self, m.State, m.Applied = true, l.State(), st.seq
			if c := l.raft.CommitIndex(); c > st.index {
				m.CommitLag = c - st.index
			}
			m.LastContact = l.SinceLeader()
		case string(s.ID) == leaderID:
			m.State = hraft.Leader.String()
		}
		out = append(out, m)
	}
	return out, nil
}
