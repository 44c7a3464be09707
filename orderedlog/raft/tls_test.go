package raft

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/logtest"
)

// The suite through a follower of three nodes whose Raft traffic and
// forwarding share one mutual-TLS port each.
func TestConformanceThreeNodesOverTLS(t *testing.T) {
	logtest.Run(t, func(t *testing.T) orderedlog.Log {
		return NewTLSTestCluster(t, 3, TestOptions()).Follower()
	})
}

// A node restarted on its data directory and address rejoins over TLS.
func TestTLSNodeRestartRejoins(t *testing.T) {
	c := NewTLSTestCluster(t, 3, TestOptions())
	lead := c.WaitLeader()
	logtest.MustPropose(t, c.Node(lead), orderedlog.Put("services/a", nil))
	c.Stop(lead)
	c.Start(lead, false)
	seq := logtest.MustPropose(t, c.Node(lead), orderedlog.Put("services/b", nil))
	for i := range 3 {
		c.WaitSeq(i, seq)
	}
}

// Nothing reaches the cluster without a certificate from its CA: not
// plaintext, not TLS without a client certificate, not a node of another
// cluster (which also refuses this cluster's nodes as servers).
func TestTLSRefusesPeersWithoutAClusterCertificate(t *testing.T) {
	c := NewTLSTestCluster(t, 1, TestOptions())
	addr := c.addrs[0]
	before := c.Node(0).Tail()
	req := append([]byte{forwardPropose}, encodeCommand(newRequestID(), mustEncode(orderedlog.Put("services/intruder", nil)))...)
	frame := func(w net.Conn) {
		w.Write([]byte{streamForward})
		w.Write(append([]byte{byte(len(req))}, req...))
	}

	plain, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	frame(plain)
	if reply, err := bufio.NewReader(plain).ReadByte(); err == nil {
		t.Fatalf("plaintext peer got a reply (%d)", reply)
	}
	plain.Close()

	anon, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err == nil {
		frame(anon)
		if _, err = bufio.NewReader(anon).ReadByte(); err == nil {
			t.Fatal("a TLS peer without a client certificate got a reply")
		}
		anon.Close()
	}

	other, err := NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, _ := other.Issue("node-0", time.Hour)
	foreign, err := ListenTLS("127.0.0.1:0", TLSConfig{CAPEM: other.CertPEM, CertPEM: cert, KeyPEM: key}, QuietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Raft().(hraft.WithClose).Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := foreign.Forward(ctx, c.Node(0).trans.Raft().LocalAddr(), req); !errors.Is(err, ErrNotSent) {
		t.Fatalf("forward from another cluster's node: %v, want refused before sending", err)
	}
	if c.Node(0).Tail() != before {
		t.Fatal("a peer without a cluster certificate wrote to the log")
	}
}
