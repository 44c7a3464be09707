package raft

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"
)

// quietLogger keeps Raft's election warnings out of test output unless -v.
func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testCluster is n nodes on one in-memory network, each with its own data
// directory, with timeouts short enough for tests on a busy machine.
type testCluster struct {
	t     testing.TB
	net   *InmemNetwork
	dir   string
	nodes []*Log
	opts  Options
}

func nodeID(i int) string   { return fmt.Sprintf("node-%d", i) }
func nodeAddr(i int) string { return fmt.Sprintf("inmem-%d", i) }

// testOptions are the options every test node starts with.
func testOptions() Options {
	return Options{
		HeartbeatTimeout:  200 * time.Millisecond,
		ElectionTimeout:   200 * time.Millisecond,
		HeartbeatInterval: 20 * time.Millisecond,
		Logger:            quietLogger(),
	}
}

// newCluster bootstraps node 0, waits for it to lead, and adds n-1 voters.
func newCluster(t testing.TB, n int, opts Options) *testCluster {
	t.Helper()
	c := &testCluster{t: t, net: NewInmemNetwork(), dir: t.TempDir(), nodes: make([]*Log, n), opts: opts}
	t.Cleanup(c.closeAll)
	c.start(0, true)
	c.waitLeader()
	for i := 1; i < n; i++ {
		c.start(i, false)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := c.leader().AddVoter(ctx, nodeID(i), nodeAddr(i))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// start opens node i (again, after stop) on its data directory.
func (c *testCluster) start(i int, bootstrap bool) *Log {
	c.t.Helper()
	opts := c.opts
	opts.NodeID, opts.Dir, opts.Bootstrap = nodeID(i), filepath.Join(c.dir, nodeID(i)), bootstrap
	opts.Transport = c.net.Transport(nodeAddr(i))
	l, err := Open(opts)
	if err != nil {
		c.t.Fatalf("opening %s: %v", opts.NodeID, err)
	}
	c.nodes[i] = l
	return l
}

func (c *testCluster) stop(i int) {
	c.t.Helper()
	if err := c.nodes[i].Close(); err != nil {
		c.t.Fatalf("closing %s: %v", nodeID(i), err)
	}
}

func (c *testCluster) closeAll() {
	for _, l := range c.nodes {
		if l != nil {
			l.Close()
		}
	}
}

// leader waits until exactly one live node leads and returns it.
func (c *testCluster) leader() *Log {
	c.t.Helper()
	return c.nodes[c.waitLeader()]
}

func (c *testCluster) waitLeader() int {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for i, l := range c.nodes {
			if l != nil && !l.isClosed() && l.State() == "Leader" {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatal("no leader within 30s")
	return -1
}

// follower returns a live node that is not the leader.
func (c *testCluster) follower() *Log {
	c.t.Helper()
	lead := c.waitLeader()
	for i, l := range c.nodes {
		if i != lead && l != nil && !l.isClosed() {
			return l
		}
	}
	c.t.Fatal("no follower")
	return nil
}

// waitApplied waits until node i has applied seq.
func (c *testCluster) waitSeq(i int, seq uint64) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for c.nodes[i].Tail() < seq {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s at seq %d, want %d within 30s", nodeID(i), c.nodes[i].Tail(), seq)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
