package e2ecluster

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// vipOf parses `rune cast`'s line "service/NAME (NS) ACTION vip VIP".
func vipOf(t *testing.T, castOut string) string {
	t.Helper()
	f := strings.Fields(castOut)
	if len(f) < 2 || f[len(f)-2] != "vip" {
		t.Fatalf("rune cast printed %q, want a line ending in vip VIP", castOut)
	}
	return f[len(f)-1]
}

// waitDig waits until dig +short NAME on n prints want.
func waitDig(t *testing.T, n *Node, name, want string, timeout time.Duration) {
	t.Helper()
	var got string
	if !waitUntil(timeout, func() bool {
		got = strings.TrimSpace(n.Dig(t, "+short", name))
		return got == want
	}) {
		t.Fatalf("%s: dig +short %s prints %q after %v, want %q", n.Name, name, got, timeout, want)
	}
}

// TestPartition cuts one node off from the other two, a follower and then
// the leader: past the stale budget the cut-off node fails closed (SERVFAIL
// with EDE Not Ready) and refuses writes saying no leader is reachable,
// while the majority (electing a new leader if need be) keeps answering
// and writing; after the heal the cut-off node serves what was written
// during the partition and every node's state is identical.
func TestPartition(t *testing.T) {
	nt := NewCluster(t, 3)
	for _, role := range []string{"follower", "leader"} {
		t.Run("cut the "+role, func(t *testing.T) {
			leader := nt.Leader(t, 10*time.Second)
			cut := leader
			if role == "follower" {
				cut = nt.Nodes[(slices.Index(nt.Nodes, leader)+1)%len(nt.Nodes)]
			}
			testPartition(t, nt, cut, role)
		})
	}
}

func testPartition(t *testing.T, nt *Net, cut *Node, role string) {
	var majority []*Node
	for _, n := range nt.Nodes {
		if n != cut {
			majority = append(majority, n)
		}
	}
	before := vipOf(t, majority[0].Cast(t, serviceDoc(role+"-before")))
	waitDig(t, cut, role+"-before.default.rune", before, 10*time.Second)

	cutAt := time.Now()
	nt.Partition(t, cut)
	t.Logf("%s (%s) cut off from %s and %s", cut.Name, role, majority[0].Name, majority[1].Name)
	// When the minority fails closed, measured while the majority writes.
	closed := make(chan time.Duration, 1)
	go func() {
		deadline := cutAt.Add(nt.StaleBudget + 30*time.Second)
		for time.Now().Before(deadline) {
			if out, _ := cut.TryDig(role + "-before.default.rune"); failsClosed(out) {
				closed <- time.Since(cutAt)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		close(closed)
	}()

	// The majority writes (through either node: one forwards to the
	// other, or they elect a leader first) and answers.
	var during string
	ok := waitUntil(majorityWriteWithin, func() bool {
		at := time.Now()
		out, err := majority[1].TryCLI("cast", docFile(t, role+"-during"))
		if err == nil {
			during = vipOf(t, out)
		}
		t.Logf("cast through %s %v after the cut, answered in %v: %v", majority[1].Name, at.Sub(cutAt).Round(time.Millisecond), time.Since(at).Round(time.Millisecond), err)
		return err == nil
	})
	if !ok {
		t.Fatalf("the majority accepts no write within %v of the cut", majorityWriteWithin)
	}
	t.Logf("the majority acknowledged a write %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	waitDig(t, majority[0], role+"-during.default.rune", during, 10*time.Second)
	waitDig(t, majority[1], role+"-before.default.rune", before, 10*time.Second)

	// The minority fails closed once its lag passes the stale budget.
	failedAt, ok := <-closed
	if !ok {
		t.Fatalf("%s still answers %v after the cut (stale budget %v):\n%s", cut.Name, time.Since(cutAt).Round(time.Millisecond), nt.StaleBudget, cut.Dig(t, role+"-before.default.rune"))
	}
	t.Logf("%s fails closed %v after the cut (stale budget %v)", cut.Name, failedAt.Round(time.Millisecond), nt.StaleBudget)
	if failedAt < nt.StaleBudget {
		t.Errorf("%s failed closed %v after the cut, before its stale budget %v", cut.Name, failedAt, nt.StaleBudget)
	}

	// ... and refuses writes, saying why, without applying them.
	if out, err := cut.TryCLI("cast", docFile(t, role+"-refused")); err == nil || !strings.Contains(err.Error(), "no leader reachable; nothing was applied") {
		t.Errorf("rune cast on the cut-off node: %v (stdout %q), want it refused with \"no leader reachable; nothing was applied\"", err, out)
	}
	if st := cut.CLI(t, "status"); !strings.Contains(st, "no leader known") {
		t.Errorf("rune status on the cut-off node does not say it knows no leader:\n%s", st)
	}

	nt.Heal(t)
	healedAt := time.Now()
	waitDig(t, cut, role+"-during.default.rune", during, 30*time.Second)
	t.Logf("%s answers the write made during the partition %v after the heal", cut.Name, time.Since(healedAt).Round(time.Millisecond))
	waitDig(t, cut, role+"-before.default.rune", before, 10*time.Second)
	d := Converged(t, nt.Nodes, 30*time.Second)
	if out := cut.Dig(t, "+short", role+"-refused.default.rune"); strings.TrimSpace(out) != "" {
		t.Errorf("the write refused on the cut-off node was applied: %s-refused.default.rune answers %q", role, out)
	}
	t.Logf("converged at seq %d", d.Seq)
}

// failsClosed says dig's output is runed's fail-closed answer.
func failsClosed(digOut string) bool {
	return strings.Contains(digOut, "status: SERVFAIL") && strings.Contains(digOut, "EDE: 14 (Not Ready)")
}

// majorityWriteWithin bounds how soon after the cut the majority
// acknowledges a write through the node that was not the leader. Cutting
// the leader, that node first forwards to the old leader; the forward ends
// when the node's known leader changes (or after Raft's heartbeat plus
// election timeout) and the write retries at the new leader, elected within
// about 2s.
const majorityWriteWithin = 5 * time.Second

// docFile writes service name's document to a file for rune cast.
func docFile(t *testing.T, name string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(f, []byte(serviceDoc(name)), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}
