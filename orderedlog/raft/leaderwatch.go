package raft

import (
	hraft "github.com/hashicorp/raft"
)

// watchLeader wakes l.leaderChanged whenever this node's idea of the
// leader changes (a new leader, none while an election runs, or itself),
// so a forward to the old leader stops waiting for a reply that, across a
// partition, never comes (forward.go). It registers before returning, so
// no change after Open is missed.
func (l *Log) watchLeader() {
	// Not blocking Raft: when the buffer is full a wake is pending anyway.
	obs := make(chan hraft.Observation, 16)
	o := hraft.NewObserver(obs, false, func(o *hraft.Observation) bool {
		_, ok := o.Data.(hraft.LeaderObservation)
		return ok
	})
	l.raft.RegisterObserver(o)
	l.wg.Go(func() {
		defer l.raft.DeregisterObserver(o)
		for {
			select {
			case <-obs:
				l.leaderChanged.Wake()
			case <-l.closing:
				return
			}
		}
	})
}
