package proxy

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"
)

// Many megabytes each way, in uneven writes, arrive intact: the splice
// loop's partial reads and writes lose or reorder nothing.
func TestBulkTransferIntact(t *testing.T) {
	data := make([]byte, 24<<20)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(data)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // echo server
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	p := devProxy(t, Config{})
	port := freePort(t, p.cfg.DevAddr)
	p.Update(&Table{Ports: []ServicePort{tcpPort("bulk", port, ln.Addr().(*net.TCPAddr).AddrPort())}})
	c, err := net.DialTCP("tcp4", nil, net.TCPAddrFromAddrPort(netip.AddrPortFrom(p.cfg.DevAddr, port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	go func() {
		for b := data; len(b) > 0; {
			n := min(len(b), 1+rand.IntN(300<<10))
			if _, err := c.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes, differing from the %d sent", len(got), len(data))
	}
}

// Many connections at once exchange many small messages (some pipelined,
// some large enough to switch a direction to splice and back), while
// others sit idle; every connection ends with a last message sent with
// its FIN. Each echo comes back whole, and each FIN comes back after it:
// no direction stops waiting for data that already arrived.
func TestManySmallExchangesIntact(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // echo server, passing the client's FIN back after the echo
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	p := devProxy(t, Config{})
	port := freePort(t, p.cfg.DevAddr)
	p.Update(&Table{Ports: []ServicePort{tcpPort("echo", port, ln.Addr().(*net.TCPAddr).AddrPort())}})
	vip := net.TCPAddrFromAddrPort(netip.AddrPortFrom(p.cfg.DevAddr, port))
	dial := func() *net.TCPConn {
		c, err := net.DialTCP("tcp4", nil, vip)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(60 * time.Second))
		return c
	}
	// exchange sends msgs back to back, then reads all their echoes.
	exchange := func(c *net.TCPConn, msgs ...[]byte) error {
		var want []byte
		for _, m := range msgs {
			if _, err := c.Write(m); err != nil {
				return err
			}
			want = append(want, m...)
		}
		got := make([]byte, len(want))
		if _, err := io.ReadFull(c, got); err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("echo of %d bytes differs from what was sent", len(want))
		}
		return nil
	}
	// finish sends a last message with the FIN and expects its echo, then EOF.
	finish := func(c *net.TCPConn, last []byte) error {
		if _, err := c.Write(last); err != nil {
			return err
		}
		c.CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, last) {
			return fmt.Errorf("last echo: %d bytes, want %d", len(got), len(last))
		}
		return nil
	}
	msg := func(rng *rand.Rand) []byte {
		n := 1 + rng.IntN(2000)
		if rng.IntN(20) == 0 {
			n = smallSize + rng.IntN(4*smallSize) // a large body: spliced
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}

	idle := make([]*net.TCPConn, 50)
	for i := range idle {
		idle[i] = dial()
		defer idle[i].Close()
	}
	const conns, rounds = 100, 200
	errs := make(chan error, conns)
	for i := range conns {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			c := dial()
			defer c.Close()
			for range rounds {
				msgs := [][]byte{msg(rng)}
				if rng.IntN(4) == 0 { // pipelined
					msgs = append(msgs, msg(rng))
				}
				if err := exchange(c, msgs...); err != nil {
					errs <- err
					return
				}
			}
			errs <- finish(c, msg(rng))
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// The idle connections still carry data after the load.
	rng := rand.New(rand.NewPCG(1, 1))
	for _, c := range idle {
		if err := exchange(c, msg(rng)); err != nil {
			t.Fatalf("idle connection: %v", err)
		}
		if err := finish(c, []byte("bye")); err != nil {
			t.Fatalf("idle connection: %v", err)
		}
	}
}
