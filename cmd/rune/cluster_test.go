package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/node/nodeconfig"
)

func acquire(t *testing.T, cfg nodeconfig.Config) *node.Runtime {
	t.Helper()
	rt, err := node.Acquire(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Release() })
	return rt
}

// rune cluster join-token prints only the token; a node joined with it is
// listed by rune get nodes and removed by rune node remove (run on the
// removed node itself), which refuses an unknown or already removed node
// and the last voter.
func TestClusterJoinTokenAndNodeRemove(t *testing.T) {
	n1 := acquire(t, nodeconfig.Config{DataDir: t.TempDir(), NodeName: "n1", ClusterAddr: testkit.FreeAddr(t), Bootstrap: true})
	addr := n1.APIAddr()
	out := mustRun(t, addr, "cluster", "join-token", "--ttl", "5m")
	if !regexp.MustCompile(`^RUNETKN-1-[0-9a-f]{64}-[0-9a-f]{16}-[0-9a-f]{32}\n$`).MatchString(out) {
		t.Fatalf("rune cluster join-token printed %q, want the token alone on one line", out)
	}
	if _, err := run(t, addr, "cluster", "join-token", "--ttl", "0s"); err == nil || !strings.Contains(err.Error(), "--ttl 0s: want a positive duration") {
		t.Errorf("join-token --ttl 0s: %v", err)
	}

	n2 := acquire(t, nodeconfig.Config{DataDir: t.TempDir(), NodeName: "n2", ClusterAddr: testkit.FreeAddr(t), Join: n1.Config().ClusterAddr, JoinToken: strings.TrimSpace(out)})
	row := regexp.MustCompile(`(?m)^n2\s+127\.0\.0\.1:\d+\s+10\.88\.1\.0/24\s+(non-voter|voter)\s`)
	if out := mustRun(t, addr, "get", "nodes"); !row.MatchString(out) {
		t.Fatalf("get nodes after n2 joined:\n%s", out)
	}

	notMember := func(name string) string {
		return `node "` + name + `" not found: it is not a member of this cluster and has no node record (already removed, or a misspelt name: see rune get nodes)`
	}
	if _, err := run(t, addr, "node", "remove", "ghost"); err == nil || err.Error() != notMember("ghost") {
		t.Errorf("node remove ghost: %v", err)
	}
	// Wait for n2's promotion, so n1 is not the last voter because n2 is.
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(mustRun(t, addr, "get", "node", "n2"), " voter "); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("n2 not promoted within 60s")
		}
	}
	// On n2: it never applies its own removal, so it does not wait for it.
	start := time.Now()
	if out := mustRun(t, n2.APIAddr(), "node", "remove", "n2"); out != "node/n2 removed\n" {
		t.Errorf("node remove n2 on n2: %q", out)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("node remove n2 on n2 took %v, want it back once the leader committed", took)
	}
	if out := mustRun(t, addr, "get", "nodes"); strings.Contains(out, "n2") {
		t.Errorf("get nodes after removing n2:\n%s", out)
	}
	if _, err := run(t, addr, "node", "remove", "n2"); err == nil || err.Error() != notMember("n2") {
		t.Errorf("node remove n2 again: %v", err)
	}
	if _, err := run(t, addr, "node", "remove", "n1"); err == nil || !strings.Contains(err.Error(), `node "n1" is the cluster's last voter`) {
		t.Errorf("node remove n1 (the last voter): %v", err)
	}
}

// On the single-node backend there is no cluster to join or leave.
func TestClusterCommandsOnASingleNode(t *testing.T) {
	addr := startRuned(t)
	for _, args := range [][]string{{"cluster", "join-token"}, {"node", "remove", "node-1"}} {
		if _, err := run(t, addr, args...); err == nil || !strings.Contains(err.Error(), "single-node Badger") {
			t.Errorf("rune %s: %v", strings.Join(args, " "), err)
		}
	}
}
