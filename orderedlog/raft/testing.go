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

// QuietLogger keeps Raft's election warnings out of test output unless -v.
func QuietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// TestCluster is n nodes in one process on an InmemNetwork, each with its
// own data directory: what tests of the backend and of its consumers run a
// real cluster on (hashicorp/raft's own tests do the same).
type TestCluster struct {
	t     testing.TB
	net   *InmemNetwork
	dir   string
	nodes []*Log
	opts  Options
	// transport makes node i's transport on addr ("" the first time).
	transport func(i int, addr string) Transport
	addrs     []string
}

func nodeID(i int) string   { return fmt.Sprintf("node-%d", i) }
func nodeAddr(i int) string { return fmt.Sprintf("inmem-%d", i) }

// TestOptions have timeouts short enough for tests, long enough for a busy
// machine.
func TestOptions() Options {
	return Options{
		HeartbeatTimeout:  500 * time.Millisecond,
		ElectionTimeout:   500 * time.Millisecond,
		HeartbeatInterval: 20 * time.Millisecond,
		Logger:            QuietLogger(),
	}
}

// NewTestCluster bootstraps node 0, waits for it to lead, and adds n-1
// voters; the nodes close when the test ends.
func NewTestCluster(t testing.TB, n int, opts Options) *TestCluster {
	t.Helper()
	net := NewInmemNetwork()
	return newTestCluster(t, n, opts, func(i int, _ string) Transport { return net.Transport(nodeAddr(i)) }, net)
}

// NewTLSTestCluster is NewTestCluster over real mutual-TLS transports on
// loopback ports, with certificates from one cluster CA, which every node
// holds (so it admits joins).
func NewTLSTestCluster(t testing.TB, n int, opts Options) *TestCluster {
	t.Helper()
	ca, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	opts.CA = ca // every node can admit joiners, as in runed
	return newTestCluster(t, n, opts, func(i int, addr string) Transport {
		cert, key, err := ca.Issue(nodeID(i), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		tr, err := ListenTLS(addr, TLSConfig{CAPEM: ca.CertPEM, CertPEM: cert, KeyPEM: key}, opts.Logger)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}, nil)
}

func newTestCluster(t testing.TB, n int, opts Options, transport func(int, string) Transport, net *InmemNetwork) *TestCluster {
	t.Helper()
	c := &TestCluster{t: t, net: net, dir: t.TempDir(), nodes: make([]*Log, n), opts: opts, transport: transport, addrs: make([]string, n)}
	t.Cleanup(c.closeAll)
	c.Start(0, true)
	c.WaitLeader()
	for i := 1; i < n; i++ {
		c.Start(i, false)
		c.addVoter(i)
	}
	return c
}

// addVoter adds node i through whichever node leads, again if leadership
// moves meanwhile (elections are frequent on a loaded test machine).
func (c *TestCluster) addVoter(i int) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := c.Leader().AddVoter(ctx, nodeID(i), c.addrs[i])
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatal(err)
		}
	}
}

// AddNonvoter starts a new node and adds it as a non-voter, which the
// leader promotes when the cluster wants another voter; it returns the
// node's number.
func (c *TestCluster) AddNonvoter() int {
	c.t.Helper()
	i := len(c.nodes)
	c.nodes, c.addrs = append(c.nodes, nil), append(c.addrs, "")
	c.Start(i, false)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := c.Leader().AddNonvoter(ctx, nodeID(i), c.addrs[i])
		cancel()
		if err == nil {
			return i
		}
		if time.Now().After(deadline) {
			c.t.Fatal(err)
		}
	}
}

// Start opens node i (again, after Stop) on its data directory.
func (c *TestCluster) Start(i int, bootstrap bool) *Log {
	c.t.Helper()
	opts := c.opts
	opts.NodeID, opts.Dir, opts.Bootstrap = nodeID(i), filepath.Join(c.dir, nodeID(i)), bootstrap
	opts.Transport = c.transport(i, c.addrs[i])
	c.addrs[i] = string(opts.Transport.Raft().LocalAddr())
	l, err := Open(opts)
	if err != nil {
		c.t.Fatalf("opening %s: %v", opts.NodeID, err)
	}
	c.nodes[i] = l
	return l
}

// Stop closes node i.
func (c *TestCluster) Stop(i int) {
	c.t.Helper()
	if err := c.nodes[i].Close(); err != nil {
		c.t.Fatalf("closing %s: %v", nodeID(i), err)
	}
}

func (c *TestCluster) closeAll() {
	for _, l := range c.nodes {
		if l != nil {
			l.Close()
		}
	}
}

// Leader waits until a live node leads and returns it.
func (c *TestCluster) Leader() *Log {
	c.t.Helper()
	return c.nodes[c.WaitLeader()]
}

// WaitLeader waits until a live node leads and returns its number.
func (c *TestCluster) WaitLeader() int {
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

// Follower returns a live node that is not the leader.
func (c *TestCluster) Follower() *Log {
	c.t.Helper()
	lead := c.WaitLeader()
	for i, l := range c.nodes {
		if i != lead && l != nil && !l.isClosed() {
			return l
		}
	}
	c.t.Fatal("no follower")
	return nil
}

// WaitSeq waits until node i has applied seq.
func (c *TestCluster) WaitSeq(i int, seq uint64) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for c.nodes[i].Tail() < seq {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s at seq %d, want %d within 30s", nodeID(i), c.nodes[i].Tail(), seq)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Node returns node i (nil before it started).
func (c *TestCluster) Node(i int) *Log { return c.nodes[i] }

// Isolate cuts node i off from the others; Heal reconnects it. Only the
// in-memory network can.
func (c *TestCluster) Isolate(i int) { c.net.Isolate(nodeAddr(i)) }
func (c *TestCluster) Heal(i int)    { c.net.Heal(nodeAddr(i)) }
