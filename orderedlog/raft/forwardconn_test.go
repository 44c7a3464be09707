package raft

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
)

// tcpProxy relays loopback TCP to target, counting the connections it
// accepts, and can cut them all like a dying peer.
type tcpProxy struct {
	ln       net.Listener
	target   string
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return p
}

func (p *tcpProxy) addr() hraft.ServerAddress { return hraft.ServerAddress(p.ln.Addr().String()) }

// cut closes every relayed connection, both ends.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// forwardPair is a transport that forwards and one that answers through a
// counting proxy; the answer echoes the request, and a request "block"
// counts itself in blocked and waits until release is closed.
func forwardPair(t *testing.T) (from *tlsTransport, proxy *tcpProxy, release chan struct{}, blocked *atomic.Int64) {
	t.Helper()
	ca, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	listen := func(name string) *tlsTransport {
		cert, key, err := ca.Issue(name, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := ListenTLS("127.0.0.1:0", TLSConfig{CAPEM: ca.CertPEM, CertPEM: cert, KeyPEM: key}, QuietLogger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Raft().(hraft.WithClose).Close() })
		return tr.(*tlsTransport)
	}
	from, to := listen("a"), listen("b")
	release, blocked = make(chan struct{}), new(atomic.Int64)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	to.Handle(func(ctx context.Context, req []byte) []byte {
		if string(req) == "block" {
			blocked.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return append([]byte("echo "), req...)
	})
	return from, newTCPProxy(t, string(to.raft.LocalAddr())), release, blocked
}

func mustForward(t *testing.T, tr *tlsTransport, addr hraft.ServerAddress, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := tr.Forward(ctx, addr, []byte(msg))
	if err != nil {
		t.Fatalf("forward %q: %v", msg, err)
	}
	if string(reply) != "echo "+msg {
		t.Fatalf("forward %q: reply %q", msg, reply)
	}
}

// Sequential forwards share one connection; concurrent ones need at most
// one each; every reply belongs to its own request.
func TestForwardReusesConnections(t *testing.T) {
	from, proxy, _, _ := forwardPair(t)
	for i := range 50 {
		mustForward(t, from, proxy.addr(), fmt.Sprint("seq ", i))
	}
	if n := proxy.accepted.Load(); n != 1 {
		t.Fatalf("50 sequential forwards opened %d connections, want 1", n)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				mustForward(t, from, proxy.addr(), fmt.Sprint("g", g, " ", i))
			}
		})
	}
	wg.Wait()
	if n := proxy.accepted.Load(); n > 8 {
		t.Fatalf("8 concurrent forwarders opened %d connections in all, want at most 8", n)
	}
}

// A connection the peer closed is not reused: the next forward dials anew
// and succeeds, and with the peer gone it fails as certainly not sent.
func TestForwardDropsClosedConnections(t *testing.T) {
	from, proxy, _, _ := forwardPair(t)
	mustForward(t, from, proxy.addr(), "one")
	proxy.cut()
	waitIdleDead(t, from, proxy.addr())
	mustForward(t, from, proxy.addr(), "two")
	if n := proxy.accepted.Load(); n != 2 {
		t.Fatalf("%d connections after a cut, want 2", n)
	}

	proxy.ln.Close()
	proxy.cut()
	waitIdleDead(t, from, proxy.addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := from.Forward(ctx, proxy.addr(), []byte("three")); !errors.Is(err, ErrNotSent) {
		t.Fatalf("forward to a peer that is gone: %v, want ErrNotSent", err)
	}
}

// waitIdleDead waits until the pool's idle connection to addr has seen
// its peer close (the FIN travels asynchronously).
func waitIdleDead(t *testing.T, tr *tlsTransport, addr hraft.ServerAddress) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tr.forwards.mu.Lock()
		idle := tr.forwards.idle[addr]
		dead := len(idle) == 1 && !idle[0].alive()
		tr.forwards.mu.Unlock()
		if dead {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle connections to %s: %d, none seen closed within 10s", addr, len(idle))
		}
		time.Sleep(time.Millisecond)
	}
}

// A forward whose peer hangs up mid-request, or that times out, fails
// promptly as possibly sent, and its connection is never reused: later
// forwards work while the abandoned request is still stuck.
func TestForwardFailuresDoNotWedgeLaterForwards(t *testing.T) {
	from, proxy, release, blocked := forwardPair(t)
	mustForward(t, from, proxy.addr(), "warm")

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := from.Forward(ctx, proxy.addr(), []byte("block"))
	if err == nil || errors.Is(err, ErrNotSent) || time.Since(start) > 5*time.Second {
		t.Fatalf("forward past its deadline: %v after %v, want a prompt failure that may have been sent", err, time.Since(start))
	}
	mustForward(t, from, proxy.addr(), "after timeout")

	done := make(chan error, 1)
	go func() {
		_, err := from.Forward(context.Background(), proxy.addr(), []byte("block"))
		done <- err
	}()
	waitFor(t, "the second blocking request reaching its handler", func() bool { return blocked.Load() == 2 })
	proxy.cut()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, ErrNotSent) {
			t.Fatalf("forward whose peer hung up: %v, want a failure that may have been sent", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a forward whose connection was cut is still waiting after 10s")
	}
	close(release)
	mustForward(t, from, proxy.addr(), "after cut")
}
