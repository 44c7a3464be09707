package raft

import (
	"testing"
	"time"
)

// A non-voter cut off from the leader is not promoted while its peer is;
// it is once it is back. Four nodes keep three voters; five healthy nodes
// make five.
func TestPromotionNeedsHealthAndGoesToFiveVoters(t *testing.T) {
	c := NewTestCluster(t, 1, TestOptions())
	a := c.AddNonvoter()
	c.Isolate(a)
	b := c.AddNonvoter()
	waitFor(t, "the healthy non-voter promoted", func() bool { return roles(t, c.Node(0))[nodeID(b)] == "voter" })
	stays(t, promoteStable+2*promoteEvery, func() bool { return roles(t, c.Node(0))[nodeID(a)] == "non-voter" },
		"a non-voter the leader cannot reach was promoted")
	c.Heal(a)
	waitFor(t, "the reconnected non-voter promoted", func() bool { return roles(t, c.Node(0))[nodeID(a)] == "voter" })

	d := c.AddNonvoter()
	stays(t, promoteStable+2*promoteEvery, func() bool { return roles(t, c.Node(c.WaitLeader()))[nodeID(d)] == "non-voter" },
		"a fourth node was promoted with three voters and four healthy nodes")
	e := c.AddNonvoter()
	waitFor(t, "five voters", func() bool {
		r := roles(t, c.Node(c.WaitLeader()))
		return len(r) == 5 && r[nodeID(d)] == "voter" && r[nodeID(e)] == "voter"
	})
}

// stays fails the test unless cond holds throughout d: a promotion that
// must not happen is given the time it would take.
func stays(t *testing.T, d time.Duration, cond func() bool, msg string) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if !cond() {
			t.Fatal(msg)
		}
	}
}
