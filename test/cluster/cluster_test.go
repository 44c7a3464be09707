package e2ecluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/api"
)

// NewCluster starts n nodes: n1 bootstraps the cluster, every other node
// joins it with a token from `rune cluster join-token`; it returns once the
// leader counts min(n, 3) voters and every node is up.
func NewCluster(t *testing.T, n int) *Net {
	t.Helper()
	nt := NewNet(t, n)
	nt.Form(t)
	return nt
}

// Form starts the net's nodes as NewCluster does.
func (nt *Net) Form(t testing.TB) {
	t.Helper()
	start := time.Now()
	first := nt.Nodes[0]
	first.Start(t, "--bootstrap")
	first.WaitUp(t, 30*time.Second)
	for _, m := range nt.Nodes[1:] {
		m.Start(t, "--join", first.ClusterAddr(), "--join-token", nt.JoinToken(t, first))
		m.WaitUp(t, 30*time.Second)
	}
	joined := time.Now()
	nt.WaitVoters(t, min(len(nt.Nodes), 3), 60*time.Second)
	t.Logf("cluster of %d up in %v (%v of it waiting for promotions)", len(nt.Nodes), time.Since(start).Round(time.Millisecond), time.Since(joined).Round(time.Millisecond))
}

// JoinToken asks n for a join token with rune cluster join-token.
func (nt *Net) JoinToken(t testing.TB, n *Node, flags ...string) string {
	t.Helper()
	tok := strings.TrimSpace(n.CLI(t, append([]string{"cluster", "join-token"}, flags...)...))
	if tok == "" || strings.ContainsAny(tok, " \n") {
		t.Fatalf("rune cluster join-token printed %q, want one token", tok)
	}
	return tok
}

// WaitVoters waits until the leader's membership has want voters, every
// running node is in it, and every running node knows that leader.
func (nt *Net) WaitVoters(t testing.TB, want int, timeout time.Duration) *api.NodeList {
	t.Helper()
	var last *api.NodeList
	var lastErr error
	if !waitUntil(timeout, func() bool {
		leader := nt.Leader(t, timeout)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		last, lastErr = leader.API.Nodes(ctx)
		return lastErr == nil && voters(last) == want
	}) {
		t.Fatalf("the leader does not count %d voters within %v: %v %s", want, timeout, lastErr, describeNodes(last))
	}
	return last
}

func voters(l *api.NodeList) int {
	v := 0
	for _, n := range l.Items {
		if n.Role == "voter" {
			v++
		}
	}
	return v
}

func describeNodes(l *api.NodeList) string {
	if l == nil {
		return ""
	}
	var b strings.Builder
	for _, n := range l.Items {
		fmt.Fprintf(&b, " %s(%s %s %s)", n.Name, n.Address, n.Role, n.State)
	}
	return b.String()
}
