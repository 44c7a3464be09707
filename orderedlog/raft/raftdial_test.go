package raft

import (
	"context"
	"net"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
)

// A Raft dial to a peer that refuses keeps trying: it connects as soon as
// the peer listens again (a restart), and gives up at once when the node
// shuts down.
func TestRaftDialWaitsForARestartingPeer(t *testing.T) {
	ca, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	listen := func(name, addr string) *tlsTransport {
		cert, key, err := ca.Issue(name, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := ListenTLS(addr, TLSConfig{CAPEM: ca.CertPEM, CertPEM: cert, KeyPEM: key}, QuietLogger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Raft().(hraft.WithClose).Close() })
		return tr.(*tlsTransport)
	}
	from := listen("a", "127.0.0.1:0")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close() // nothing listens there now: dials are refused

	type result struct {
		conn net.Conn
		err  error
	}
	dial := func() chan result {
		ch := make(chan result, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := from.dialRaft(ctx, down)
			ch <- result{c, err}
		}()
		return ch
	}
	pending := dial()
	time.Sleep(3 * redialEvery) // let it be refused a few times; any time would do
	listen("b", down)
	select {
	case r := <-pending:
		if r.err != nil {
			t.Fatalf("dial to a peer that came back: %v", r.err)
		}
		r.conn.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("a dial to a peer that listens again did not connect within 10s")
	}

	l, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down = l.Addr().String()
	l.Close()
	pending = dial()
	from.stopDialing()
	select {
	case r := <-pending:
		if r.err == nil {
			t.Fatal("a dial to a refusing peer succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stopDialing did not end a retrying dial within 5s")
	}
}
