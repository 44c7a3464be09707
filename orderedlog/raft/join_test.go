package raft

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/logtest"
)

// joinNode joins a node named name through the member at peer, the way
// runed does: it listens first, joins, then serves its cluster port with
// the certificate it got and opens its log holding the CA it was handed.
func joinNode(t *testing.T, peer, token, name string) (*Log, error) {
	t.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j, err := Join(ctx, peer, token, name, tcp.Addr().String())
	if err != nil {
		tcp.Close()
		return nil, err
	}
	ca, err := LoadCA(j.TLS.CAPEM, j.CAKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := ListenTLSOn(tcp, j.TLS, QuietLogger())
	if err != nil {
		t.Fatal(err)
	}
	opts := TestOptions()
	opts.NodeID, opts.Dir, opts.Transport, opts.CA = name, t.TempDir(), tr, ca
	l, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, nil
}

func mustToken(t *testing.T, l *Log) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, _, err := l.CreateJoinToken(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// roles maps each member, as l knows the configuration, to voter or
// non-voter.
func roles(t *testing.T, l *Log) map[string]string {
	t.Helper()
	members, err := l.Members()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range members {
		out[m.ID] = RoleName(m.Voter)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60s", what)
		}
	}
}

// Two nodes join a one-node cluster with a token — the second through the
// first joiner, a non-voter that forwards the membership change and signs
// with the CA key it was handed — start as non-voters, get the log, and are
// promoted until the cluster has three voters; a write through the last
// joiner is on every node.
func TestJoinAndPromotionToThreeVoters(t *testing.T) {
	c := NewTLSTestCluster(t, 1, TestOptions())
	boot := c.Node(0)
	seq := logtest.MustPropose(t, boot, orderedlog.Put("services/before", nil))

	a, err := joinNode(t, c.addrs[0], mustToken(t, boot), "a")
	if err != nil {
		t.Fatal(err)
	}
	if r := roles(t, boot); r["a"] != "non-voter" || r["node-0"] != "voter" {
		t.Fatalf("right after the join: roles %v, want a non-voter", r)
	}
	waitFor(t, "the joiner applies the log", func() bool { return a.Tail() >= seq })

	b, err := joinNode(t, string(a.trans.Raft().LocalAddr()), mustToken(t, a), "b")
	if err != nil {
		t.Fatalf("joining through a non-voter: %v", err)
	}
	waitFor(t, "three voters", func() bool {
		r := roles(t, boot)
		return len(r) == 3 && r["node-0"] == "voter" && r["a"] == "voter" && r["b"] == "voter"
	})
	seq = logtest.MustPropose(t, b, orderedlog.Put("services/after", nil))
	for _, l := range []*Log{boot, a, b} {
		waitFor(t, l.opts.NodeID+" applies the write", func() bool { return l.Tail() >= seq })
		if _, ok, _, _ := l.Get(context.Background(), "services/after"); !ok {
			t.Errorf("%s lacks the write made through b", l.opts.NodeID)
		}
	}
	// A fourth node keeps the cluster at three voters.
	d, err := joinNode(t, c.addrs[0], mustToken(t, boot), "d")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "d applies the log", func() bool { return d.Tail() >= seq })
	stays(t, promoteStable+2*promoteEvery, func() bool { return roles(t, boot)["d"] == "non-voter" },
		"with three voters the fourth node was promoted")
}

// A join is refused with an error saying "join token" and what is wrong:
// a malformed token, a wrong secret, an unknown or expired token, a token of
// another cluster; and a name a member already has. None of them leaves a
// member behind. Creating a token deletes expired tokens' records.
func TestJoinRefusals(t *testing.T) {
	c := NewTLSTestCluster(t, 1, TestOptions())
	boot := c.Node(0)
	good := mustToken(t, boot)
	tok, err := parseJoinToken(good)
	if err != nil {
		t.Fatal(err)
	}

	wrongSecret := tok
	wrongSecret.secret = append([]byte(nil), tok.secret...)
	wrongSecret.secret[0] ^= 1
	unknown := tok
	unknown.id = "00000000000000aa"
	other, err := NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	foreign := tok
	foreign.fingerprint = other.Fingerprint()

	// An expired token's record, as one created an hour ago with a ttl of
	// a minute would be.
	expired := tok
	expired.id = "00000000000000ee"
	sum := sha256.Sum256(expired.secret)
	rec, _ := json.Marshal(tokenRecord{SecretSHA256: hex.EncodeToString(sum[:]), Expires: time.Now().Add(-time.Minute)})
	logtest.MustPropose(t, boot, orderedlog.Put(tokenKey(expired.id), rec))

	for _, tc := range []struct {
		name, token, node, want string
	}{
		{"malformed", "SWMTKN-1-abc", "j", "malformed join token"},
		{"wrong secret", wrongSecret.String(), "j", "join token: wrong secret"},
		{"unknown", unknown.String(), "j", "join token: no token 00000000000000aa"},
		{"expired", expired.String(), "j", "join token: token 00000000000000ee expired"},
		{"another cluster", foreign.String(), "j", "join token: the member is not of the token's cluster"},
		{"name taken", good, "node-0", `node name "node-0" is already a member`},
		{"bad name", good, "Not_A_Label", "must be a DNS label"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := joinNode(t, c.addrs[0], tc.token, tc.node)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("join: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if r := roles(t, boot); len(r) != 1 {
		t.Fatalf("after refused joins the configuration is %v, want node-0 alone", r)
	}

	mustToken(t, boot)
	if _, ok, _, _ := boot.Get(context.Background(), tokenKey(expired.id)); ok {
		t.Error("the expired token's record is still in the log after creating a token")
	}
	if _, ok, _, _ := boot.Get(context.Background(), tokenKey(tok.id)); !ok {
		t.Error("creating a token deleted a token that has not expired")
	}
}

// A node without a cluster certificate may open a join stream only: a
// Raft or forwarding stream is closed at once, where an accepted one would
// wait for the peer's request.
func TestTLSRefusesRaftAndForwardStreamsWithoutACertificate(t *testing.T) {
	c := NewTLSTestCluster(t, 1, TestOptions())
	for _, kind := range []byte{streamRaft, streamForward} {
		conn, err := tlsDialAnonymous(c.addrs[0])
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte{kind})
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		var b [1]byte
		_, err = conn.Read(b[:])
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("stream %q without a certificate: read %v, want the connection closed", kind, err)
		}
		conn.Close()
	}
}

// A join request, which comes before the peer has proved anything, is
// bounded: one announcing more than maxJoin bytes is closed at once, where
// an accepted one would wait for the bytes.
func TestJoinStreamRefusesAnOversizedRequest(t *testing.T) {
	c := NewTLSTestCluster(t, 1, TestOptions())
	conn, err := tlsDialAnonymous(c.addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write(binary.AppendUvarint([]byte{streamJoin}, maxJoin+1))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	_, err = conn.Read(b[:])
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("an oversized join request: read %v, want the connection closed", err)
	}
}

// A voter or non-voter is removed through any node; removing a node that
// is no member, or the last voter, is refused.
func TestRemoveMember(t *testing.T) {
	c := NewTestCluster(t, 3, TestOptions())
	lead := c.WaitLeader()
	f1, f2 := (lead+1)%3, (lead+2)%3
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Node(f1).RemoveMember(ctx, nodeID(f2)); err != nil {
		t.Fatal(err)
	}
	if r := roles(t, c.Node(f1)); len(r) != 2 || r[nodeID(f2)] != "" {
		t.Fatalf("after removing %s: %v", nodeID(f2), r)
	}
	if err := c.Node(f1).RemoveMember(ctx, "nope"); !errors.Is(err, ErrNotMember) || !IsRefused(err) {
		t.Fatalf("removing an unknown node: %v", err)
	}
	if err := c.Node(lead).RemoveMember(ctx, nodeID(f1)); err != nil {
		t.Fatal(err)
	}
	if err := c.Node(lead).RemoveMember(ctx, nodeID(lead)); !errors.Is(err, ErrLastVoter) || !IsRefused(err) {
		t.Fatalf("removing the last voter: %v, want refused", err)
	}
	if r := roles(t, c.Node(lead)); len(r) != 1 {
		t.Fatalf("roles %v, want the leader alone", r)
	}
}

// tlsDialAnonymous opens a TLS connection to a node without presenting a
// certificate, as a joiner does.
func tlsDialAnonymous(addr string) (*tls.Conn, error) {
	return tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
}

// A removed node keeps a certificate the CA signed, but the leader no
// longer takes its forwarded writes.
func TestTLSRemovedNodeCannotForward(t *testing.T) {
	c := NewTLSTestCluster(t, 3, TestOptions())
	lead := c.WaitLeader()
	gone := c.Node((lead + 1) % 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Node(lead).RemoveMember(ctx, gone.opts.NodeID); err != nil {
		t.Fatal(err)
	}
	before := c.Node(lead).Tail()
	req := append([]byte{forwardPropose}, encodeCommand(newRequestID(), mustEncode(orderedlog.Put("services/removed", nil)))...)
	reply, err := gone.trans.Forward(ctx, hraft.ServerAddress(c.addrs[lead]), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(reply) == 0 || reply[0] != replyRejected || !strings.Contains(string(reply), "not a member") {
		t.Fatalf("forward from a removed node: reply %q, want refused as no member", reply)
	}
	if c.Node(lead).Tail() != before {
		t.Fatal("a removed node's forwarded write was applied")
	}
}
