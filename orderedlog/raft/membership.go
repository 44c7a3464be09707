package raft

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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

// AddNonvoter adds the node id, reachable at addr, as a non-voter: it gets
// the log but does not vote until promotion (promote.go) makes it a voter.
// It works on any node (a follower forwards it to the leader); a name or an
// address a member already has is refused.
func (l *Log) AddNonvoter(ctx context.Context, id, addr string) error {
	e := &encoder{}
	e.bytes([]byte(id))
	e.bytes([]byte(addr))
	if _, err := l.through(ctx, forwardAddNonvoter, e.buf, time.Now().Add(l.opts.RetryWindow), true); err != nil {
		return fmt.Errorf("adding node %s: %w", id, err)
	}
	return nil
}

// RemoveMember removes the node id from the cluster. It works on any node;
// the leader, whose configuration is the latest, refuses removing a node
// that is no member (ErrNotMember) or the last voter (ErrLastVoter). A node
// removing itself returns once the leader has committed the removal: the
// leader stops replicating to a removed node, which so may never apply it.
func (l *Log) RemoveMember(ctx context.Context, id string) error {
	e := &encoder{}
	e.bytes([]byte(id))
	self := id == l.opts.NodeID
	if _, err := l.through(ctx, forwardRemove, e.buf, time.Now().Add(l.opts.RetryWindow), !self); err != nil {
		return fmt.Errorf("removing node %s: %w", id, err)
	}
	return nil
}

// CheckRemove says, from the latest configuration this node knows, whether
// RemoveMember(id) would be refused (ErrNotMember, ErrLastVoter); the
// leader checks again when it removes.
func (l *Log) CheckRemove(id string) error {
	f := l.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("orderedlog/raft: reading the configuration: %w", err)
	}
	return checkRemove(f.Configuration().Servers, hraft.ServerID(id))
}

// ErrNotMember: a membership change named a node the cluster does not have.
var ErrNotMember = errors.New("no such member")

// ErrLastVoter: removing the cluster's only voter would leave no one to
// commit anything, its own removal included.
var ErrLastVoter = errors.New("the cluster's last voter")

// IsRefused reports whether err is a request refused as such (a bad
// membership change, a malformed command), which retrying cannot change.
func IsRefused(err error) bool { return errors.Is(err, errRejected) }

// checkRemove refuses removing id from servers when it is no member or the
// last voter.
func checkRemove(servers []hraft.Server, id hraft.ServerID) error {
	i := slices.IndexFunc(servers, func(s hraft.Server) bool { return s.ID == id })
	if i < 0 {
		return fmt.Errorf("%w: %w: node %q (see `rune get nodes`)", errRejected, ErrNotMember, id)
	}
	voters := 0
	for _, s := range servers {
		if s.Suffrage == hraft.Voter {
			voters++
		}
	}
	if servers[i].Suffrage == hraft.Voter && voters == 1 {
		return fmt.Errorf("%w: node %q is %w: without it nothing can commit", errRejected, id, ErrLastVoter)
	}
	return nil
}

// changeAsLeader does a membership change as the leader, against the
// configuration it reads, so a concurrent change makes it fail (and retry)
// rather than act on a stale one.
func (l *Log) changeAsLeader(kind byte, body []byte, timeout time.Duration) (*outcome, error) {
	d := &decoder{r: bufio.NewReader(bytes.NewReader(body))}
	id := hraft.ServerID(d.bytes())
	var addr hraft.ServerAddress
	if kind == forwardAddNonvoter {
		addr = hraft.ServerAddress(d.bytes())
	}
	d.end()
	if d.err != nil {
		return nil, fmt.Errorf("%w: membership change: %w", errRejected, d.err)
	}
	cf := l.raft.GetConfiguration()
	if err := l.wait(cf, timeout); err != nil {
		return nil, fmt.Errorf("%w: reading the configuration: %w", errNotLeader, err)
	}
	var f hraft.IndexFuture
	servers := cf.Configuration().Servers
	switch kind {
	case forwardAddNonvoter:
		for _, s := range servers {
			switch {
			case s.ID == id:
				return nil, fmt.Errorf("%w: node name %q is already a member (at %s); pick another --node-name, or if that node is gone for good, `rune node remove %s` first", errRejected, id, s.Address, id)
			case s.Address == addr:
				return nil, fmt.Errorf("%w: cluster address %s is already member %s's", errRejected, addr, s.ID)
			}
		}
		f = l.raft.AddNonvoter(id, addr, cf.Index(), timeout)
	case forwardRemove:
		if err := checkRemove(servers, id); err != nil {
			return nil, err
		}
		f = l.raft.RemoveServer(id, cf.Index(), timeout)
	}
	if err := l.wait(f, timeout); err != nil {
		if errors.Is(err, hraft.ErrNotLeader) || errors.Is(err, hraft.ErrLeadershipTransferInProgress) || errors.Is(err, hraft.ErrEnqueueTimeout) || strings.Contains(err.Error(), "configuration changed since") {
			return nil, fmt.Errorf("%w: %w", errNotLeader, err)
		}
		return nil, fmt.Errorf("%w: %w", errMaybeSubmitted, err)
	}
	return &outcome{index: f.Index()}, nil
}

// isMember reports whether the latest configuration this node knows has
// id; a node that knows none yet (it just joined) takes everyone in.
func (l *Log) isMember(id string) bool {
	servers := l.raft.GetConfiguration().Configuration().Servers
	return len(servers) == 0 || slices.ContainsFunc(servers, func(s hraft.Server) bool { return s.ID == hraft.ServerID(id) })
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
