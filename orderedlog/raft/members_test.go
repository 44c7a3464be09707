package raft

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/runenet/runenet/orderedlog"
)

// A follower lists every server of the configuration: itself with its own
// progress, the leader it follows as leader, the other peer as unknown.
func TestMembersAsAFollowerKnowsThem(t *testing.T) {
	c := NewTestCluster(t, 3, TestOptions())
	lead := c.WaitLeader()
	seq, err := c.Node(lead).Propose(context.Background(), []orderedlog.Op{{Type: orderedlog.OpPut, Key: "k", Value: []byte("v")}})
	if err != nil {
		t.Fatal(err)
	}
	f := (lead + 1) % 3
	c.WaitSeq(f, seq)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if id, _ := c.Node(f).Leader(); id == nodeID(lead) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the follower learnt no leader within 30s")
		}
	}
	members, err := c.Node(f).Members()
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 3 {
		t.Fatalf("members %+v, want 3", members)
	}
	for i, m := range members {
		want := Member{ID: nodeID(i), Address: nodeAddr(i), Voter: true}
		switch i {
		case lead:
			want.State = "Leader"
		case f:
			want.Self, want.State, want.Applied, want.CommitLag, want.LastContact = true, "Follower", m.Applied, m.CommitLag, m.LastContact
			if m.Applied < seq {
				t.Errorf("the follower reports applied seq %d, want at least %d", m.Applied, seq)
			}
			if m.LastContact <= 0 || m.LastContact > 30*time.Second {
				t.Errorf("the follower's last contact %v, want a recent one", m.LastContact)
			}
		}
		if m != want {
			t.Errorf("member %d: %+v, want %+v", i, m, want)
		}
	}
}

// On a one-node cluster every metric of the backend is exported with the
// values of a leader that has applied a write.
func TestMetricsOfAOneNodeCluster(t *testing.T) {
	c := NewTestCluster(t, 1, TestOptions())
	l := c.Leader()
	seq, err := l.Propose(context.Background(), []orderedlog.Op{{Type: orderedlog.OpPut, Key: "k", Value: []byte("v")}})
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf
	}
	gauge := func(name string) float64 {
		mf := got[name]
		if mf == nil || len(mf.Metric) != 1 {
			t.Fatalf("%s: %v, want one series", name, mf)
		}
		return mf.Metric[0].GetGauge().GetValue()
	}
	if v := gauge("rune_raft_leader"); v != 1 {
		t.Errorf("rune_raft_leader %v, want 1", v)
	}
	if v := gauge("rune_raft_term"); v < 1 {
		t.Errorf("rune_raft_term %v, want at least 1", v)
	}
	commit, applied := gauge("rune_raft_commit_index"), gauge("rune_raft_applied_index")
	// The index counts the bootstrap configuration and the leader's no-op too.
	if applied < float64(seq)+1 || commit < applied {
		t.Errorf("rune_raft_commit_index %v, rune_raft_applied_index %v after seq %d", commit, applied, seq)
	}
	if v := gauge("rune_raft_last_contact_seconds"); v != 0 {
		t.Errorf("rune_raft_last_contact_seconds %v on the leader, want 0", v)
	}
	if mf := got["rune_raft_apply_duration_seconds"]; mf == nil || mf.Metric[0].GetHistogram().GetSampleCount() < 1 {
		t.Errorf("rune_raft_apply_duration_seconds: %v, want the write observed", mf)
	}
	if got["rune_orderedlog_forwarded_total"] == nil {
		t.Error("rune_orderedlog_forwarded_total is not exported")
	}
	nodes := got["rune_cluster_nodes"]
	if nodes == nil || len(nodes.Metric) != 1 {
		t.Fatalf("rune_cluster_nodes: %v, want one series", nodes)
	}
	labels := map[string]string{}
	for _, lp := range nodes.Metric[0].Label {
		labels[lp.GetName()] = lp.GetValue()
	}
	if labels["role"] != "voter" || labels["state"] != "leader" || nodes.Metric[0].GetGauge().GetValue() != 1 {
		t.Errorf("rune_cluster_nodes: %v, want {role=voter,state=leader} 1", nodes.Metric[0])
	}
}

// A node removing itself returns once the leader committed the removal,
// though it never applies it (the leader stops replicating to it); asked
// again, it and the leader refuse, saying it is no member.
func TestRemoveSelf(t *testing.T) {
	opts := TestOptions()
	opts.RetryWindow = 20 * time.Second
	c := NewTestCluster(t, 3, opts)
	lead := c.WaitLeader()
	f := (lead + 1) % 3
	ctx := context.Background()
	start := time.Now()
	if err := c.Node(f).RemoveMember(ctx, nodeID(f)); err != nil {
		t.Fatalf("%s removing itself: %v", nodeID(f), err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("%s removing itself took %v; want it back once the leader committed", nodeID(f), took)
	}
	if r := roles(t, c.Leader()); len(r) != 2 || r[nodeID(f)] != "" {
		t.Fatalf("after %s removed itself the leader has %v", nodeID(f), r)
	}
	if err := c.Node(f).RemoveMember(ctx, nodeID(f)); !IsRefused(err) {
		t.Fatalf("%s removing itself again: %v, want refused", nodeID(f), err)
	}
	if err := c.Leader().RemoveMember(ctx, nodeID(f)); !errors.Is(err, ErrNotMember) {
		t.Fatalf("removing %s again on the leader: %v, want ErrNotMember", nodeID(f), err)
	}
	if err := c.Leader().CheckRemove(nodeID(f)); !errors.Is(err, ErrNotMember) {
		t.Fatalf("CheckRemove of removed %s on the leader: %v, want ErrNotMember", nodeID(f), err)
	}
}
