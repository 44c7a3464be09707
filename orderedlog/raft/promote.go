package raft

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"time"

	hraft "github.com/hashicorp/raft"
)

// Promotion, as Consul's autopilot does it: a node joins as a non-voter
// and the leader makes it a voter once it is healthy — it answers a status
// request, has heard from a leader within the heartbeat timeout, and has
// applied the log to within promoteMaxLag entries of the leader — and has
// stayed so for promoteStable, while the cluster has fewer voters than it
// wants: 3, or 5 once 5 nodes are healthy. One promotion per round, so the
// configuration changes one step at a time. A voter that dies stays a
// voter (removing one is `rune node remove`).
//
// hashicorp/raft keeps the leader's view of each follower's replication to
// itself, so the leader asks each node for its progress over the cluster
// transport (a forwardStatus request). hashicorp/raft-autopilot, Consul's
// library, needs the application to fetch the same per-server figures, and
// brings a state machine of its own for a rule this small.
const (
	promoteEvery  = time.Second
	promoteStable = 3 * time.Second
	promoteMaxLag = 64
)

// peerStatus is a node's answer to a status request.
type peerStatus struct {
	index       uint64        // the last Raft index it applied
	sinceLeader time.Duration // since it last knew a leader
}

// status answers a status request (any node answers).
func (l *Log) status() []byte {
	e := &encoder{buf: []byte{replyApplied}}
	e.uv(l.fsm.applied().index)
	e.uv(uint64(l.SinceLeader()))
	return e.buf
}

func (l *Log) peerStatus(ctx context.Context, addr hraft.ServerAddress) (peerStatus, error) {
	reply, err := l.trans.Forward(ctx, addr, []byte{forwardStatus})
	if err != nil {
		return peerStatus{}, err
	}
	if len(reply) == 0 || reply[0] != replyApplied {
		return peerStatus{}, fmt.Errorf("status of %s: unexpected reply %q", addr, reply)
	}
	d := &decoder{r: bufio.NewReader(bytes.NewReader(reply[1:]))}
	st := peerStatus{index: d.uv(), sinceLeader: time.Duration(d.uv())}
	d.end()
	return st, d.err
}

// promoteLoop runs promotion rounds while this node leads.
func (l *Log) promoteLoop() {
	t := time.NewTicker(promoteEvery)
	defer t.Stop()
	healthySince := map[hraft.ServerID]time.Time{}
	for {
		select {
		case <-l.closing:
			return
		case <-t.C:
		}
		if l.raft.State() != hraft.Leader {
			clear(healthySince)
			continue
		}
		l.promoteRound(healthySince)
	}
}

// promoteRound checks every other node's health, then promotes the first
// non-voter (in configuration order) that has been healthy for
// promoteStable if the cluster wants another voter.
func (l *Log) promoteRound(healthySince map[hraft.ServerID]time.Time) {
	cf := l.raft.GetConfiguration()
	if err := l.wait(cf, promoteEvery); err != nil {
		return
	}
	servers := cf.Configuration().Servers
	now := time.Now()
	lead := l.fsm.applied().index
	healthy, voters := 1, 0 // this node leads: it is healthy
	seen := map[hraft.ServerID]bool{}
	for _, s := range servers {
		if s.Suffrage == hraft.Voter {
			voters++
		}
		if s.ID == hraft.ServerID(l.opts.NodeID) {
			continue
		}
		seen[s.ID] = true
		ctx, cancel := context.WithTimeout(context.Background(), promoteEvery)
		st, err := l.peerStatus(ctx, s.Address)
		cancel()
		if err != nil || st.index+promoteMaxLag < lead || st.sinceLeader > l.heartbeatTimeout {
			delete(healthySince, s.ID)
			continue
		}
		healthy++
		if _, ok := healthySince[s.ID]; !ok {
			healthySince[s.ID] = now
		}
	}
	for id := range healthySince {
		if !seen[id] {
			delete(healthySince, id)
		}
	}
	want := 3
	if healthy >= 5 {
		want = 5
	}
	if voters >= want {
		return
	}
	for _, s := range servers {
		since, ok := healthySince[s.ID]
		if s.Suffrage == hraft.Voter || !ok || now.Sub(since) < promoteStable {
			continue
		}
		if err := l.wait(l.raft.AddVoter(s.ID, s.Address, cf.Index(), membershipTimeout), membershipTimeout); err != nil {
			l.opts.Logger.Warn("orderedlog/raft: promoting a non-voter failed; retrying next round", "node", s.ID, "err", err)
			return
		}
		l.opts.Logger.Info("orderedlog/raft: promoted a non-voter to voter", "node", s.ID, "voters", voters+1)
		return
	}
}
