package e2ecluster

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/api"
)

// TestBootstrapRestart: a node that bootstrapped a cluster, SIGKILLed and
// started again without --bootstrap, leads its one-voter cluster with its
// state; a data directory that belongs to no cluster is refused without
// --bootstrap (or a join).
func TestBootstrapRestart(t *testing.T) {
	nt := NewNet(t, 2)
	n := nt.Nodes[0]
	n.Start(t, "--bootstrap")
	n.WaitUp(t, 30*time.Second)
	vip := vipOf(t, n.Cast(t, serviceDoc("api")))
	waitDig(t, n, "api.default.rune", vip, 5*time.Second)
	n.Kill(t)
	n.Restart(t)
	waitDig(t, n, "api.default.rune", vip, 5*time.Second)
	if st := n.CLI(t, "status"); !strings.Contains(st, "leader (1 voter)") {
		t.Errorf("rune status after the restart does not say leader (1 voter):\n%s", st)
	}
	nodes := n.CLI(t, "get", "nodes")
	if !strings.Contains(nodes, "n1") || !strings.Contains(nodes, " voter ") || !strings.Contains(nodes, n.ClusterAddr()) {
		t.Errorf("rune get nodes after the restart:\n%s", nodes)
	}

	lone := nt.Nodes[1]
	lone.Start(t)
	err, out := lone.Exit(t, 30*time.Second)
	if err == nil || !strings.Contains(out, "--bootstrap") {
		t.Errorf("runed --cluster-addr on a data dir of no cluster: exit %v, want a failure naming --bootstrap:\n%s", err, tail(out, 2000))
	}
}

// TestMembership: a cluster bootstrapped on n1 refuses joiners with a
// wrong or an expired token (runed exits non-zero naming the join token),
// takes joiners with a valid one (a node certificate for their name) and
// promotes them to voters; a SIGKILLed member rejoins without a token
// (and a stale --join is ignored on a member's data dir), catching up
// with what was written while it was down; `rune node remove` takes a
// node out and refuses to remove the last voter.
func TestMembership(t *testing.T) {
	nt := NewNet(t, 5)
	n1, n2, n3, wrong, expired := nt.Nodes[0], nt.Nodes[1], nt.Nodes[2], nt.Nodes[3], nt.Nodes[4]
	n1.Start(t, "--bootstrap")
	n1.WaitUp(t, 30*time.Second)

	t.Run("wrong token", func(t *testing.T) {
		good := nt.JoinToken(t, n1)
		for _, tok := range []string{"not-a-token", flipLast(good)} {
			wrong.Start(t, "--join", n1.ClusterAddr(), "--join-token", tok)
			err, out := wrong.Exit(t, 30*time.Second)
			if err == nil || !strings.Contains(out, "join token") {
				t.Errorf("joining with token %q: exit %v, want a failure naming the join token:\n%s", tok, err, tail(out, 2000))
			}
			t.Logf("token %q: %v: %s", tok, err, lastLine(out))
			os.RemoveAll(wrong.DataDir)
		}
	})
	t.Run("expired token", func(t *testing.T) {
		tok := nt.JoinToken(t, n1, "--ttl", "1s")
		expiry := time.Now().Add(1500 * time.Millisecond)
		waitUntil(2*time.Second, func() bool { return time.Now().After(expiry) })
		expired.Start(t, "--join", n1.ClusterAddr(), "--join-token", tok)
		err, out := expired.Exit(t, 30*time.Second)
		if err == nil || !strings.Contains(out, "join token") || !strings.Contains(out, "expired") {
			t.Errorf("joining with an expired token: exit %v, want a failure saying the join token expired:\n%s", err, tail(out, 2000))
		}
		t.Logf("expired token: %v: %s", err, lastLine(out))
	})
	if list := n1Nodes(t, n1); len(list.Items) != 1 {
		t.Fatalf("refused joiners are members: %s", describeNodes(list))
	}

	// Valid tokens: joiners come in and are promoted to keep three voters.
	for _, n := range []*Node{n2, n3} {
		n.Start(t, "--join", n1.ClusterAddr(), "--join-token", nt.JoinToken(t, n1))
		n.WaitUp(t, 30*time.Second)
		checkNodeCert(t, n)
	}
	nt.WaitVoters(t, 3, 60*time.Second)

	// Restart-rejoin: n2 misses a write while down, then rejoins without a
	// token; n3 restarts with a stale --join and token, which are ignored.
	n2.Kill(t)
	vip := vipOf(t, n1.Cast(t, serviceDoc("missed")))
	n2.Restart(t)
	waitDig(t, n2, "missed.default.rune", vip, 10*time.Second)
	n3.Stop(t)
	n3.Start(t, "--join", n1.ClusterAddr(), "--join-token", "not-a-token")
	n3.WaitUp(t, 30*time.Second)
	waitDig(t, n3, "missed.default.rune", vip, 10*time.Second)
	nt.WaitVoters(t, 3, 30*time.Second)
	Converged(t, nt.Nodes[:3], 30*time.Second)

	// Remove: n3 (stopped first) through the leader, then n2 while it runs
	// through n2 itself, which never applies its own removal and must not
	// wait for it; removing n2 again says it is gone; n1, the last voter,
	// cannot be removed.
	n3.Stop(t)
	nt.Leader(t, 10*time.Second).CLI(t, "node", "remove", "n3")
	start := time.Now()
	n2.CLI(t, "node", "remove", "n2")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("rune node remove n2 on n2 took %v, want it back once the leader committed", took)
	}
	if out, err := n1.TryCLI("node", "remove", "n2"); err == nil || !strings.Contains(err.Error(), "already removed") {
		t.Errorf("rune node remove n2 again: %v (stdout %q), want not found, already removed", err, out)
	}
	if !waitUntil(30*time.Second, func() bool {
		l := n1Nodes(t, n1)
		return len(l.Items) == 1 && l.Items[0].Name == "n1"
	}) {
		t.Fatalf("n2 and n3 still members after rune node remove: %s", describeNodes(n1Nodes(t, n1)))
	}
	if out, err := n1.TryCLI("node", "remove", "n1"); err == nil || !strings.Contains(err.Error(), "last voter") {
		t.Errorf("rune node remove of the last voter: %v (stdout %q), want it refused naming the last voter", err, out)
	}
	waitDig(t, n1, "missed.default.rune", vip, 10*time.Second)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// flipLast changes a token's last character: well formed, wrong secret.
func flipLast(tok string) string {
	b := []byte(tok)
	if b[len(b)-1] == 'a' {
		b[len(b)-1] = 'b'
	} else {
		b[len(b)-1] = 'a'
	}
	return string(b)
}

func n1Nodes(t *testing.T, n *Node) *api.NodeList {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := n.API.Nodes(ctx)
	if err != nil {
		t.Fatalf("%s: nodes: %v", n.Name, err)
	}
	return l
}

// checkNodeCert: the joiner holds a certificate for its node name, issued
// by the cluster CA it was given.
func checkNodeCert(t *testing.T, n *Node) {
	t.Helper()
	dir := filepath.Join(n.DataDir, "cluster-tls")
	parse := func(name string) *x509.Certificate {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s: %s holds no PEM block", n.Name, name)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatalf("%s: %s: %v", n.Name, name, err)
		}
		return c
	}
	cert, ca := parse("node.pem"), parse("ca.pem")
	if !slices.Contains(cert.DNSNames, n.Name) {
		t.Errorf("%s's node certificate names %v, not %s", n.Name, cert.DNSNames, n.Name)
	}
	if err := cert.CheckSignatureFrom(ca); err != nil {
		t.Errorf("%s's node certificate is not signed by the cluster CA: %v", n.Name, err)
	}
}
