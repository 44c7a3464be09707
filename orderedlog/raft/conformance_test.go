package raft

import (
	"testing"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/logtest"
)

func TestConformanceSingleNode(t *testing.T) {
	logtest.Run(t, func(t *testing.T) orderedlog.Log {
		return NewTestCluster(t, 1, TestOptions()).nodes[0]
	})
}

// The suite drives a follower: every write is forwarded to the leader and
// returns once the follower applied it, every read and watch is the
// follower's own.
func TestConformanceThreeNodesViaFollower(t *testing.T) {
	logtest.Run(t, func(t *testing.T) orderedlog.Log {
		return NewTestCluster(t, 3, TestOptions()).Follower()
	})
}

func TestConformanceThreeNodesViaLeader(t *testing.T) {
	logtest.Run(t, func(t *testing.T) orderedlog.Log {
		return NewTestCluster(t, 3, TestOptions()).Leader()
	})
}
