package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/runenet/runenet/internal/testkit"
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

// A destination that takes little at a time (tiny receive buffers both
// ways) makes the relay hold what the socket did not take and wait for it
// to drain, in the copy path (small writes one way) and the splice path
// (bulk the other): everything still arrives, in order, and the end of
// each direction after it.
func TestSlowReceiversGetEverything(t *testing.T) {
	data := make([]byte, 8<<20)
	rand.NewChaCha8([32]byte{2}).Read(data)
	// Receive buffers are set before the connection is made (on the
	// listener, for the endpoint's side): shrunk after the handshake, the
	// window shrinks, and the sender waits on zero-window probes that back
	// off for seconds.
	small := func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10) })
	}
	lc := net.ListenConfig{Control: small}
	l, err := lc.Listen(t.Context(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := l.(*net.TCPListener)
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() { // sends data while reading what the client sends
		c, err := ln.AcceptTCP()
		if err != nil {
			return
		}
		go func() { b, _ := io.ReadAll(c); got <- b; c.Close() }()
		c.Write(data)
		c.CloseWrite()
	}()
	p := devProxy(t, Config{})
	port := freePort(t, p.cfg.DevAddr)
	p.Update(&Table{Ports: []ServicePort{tcpPort("slow", port, ln.Addr().(*net.TCPAddr).AddrPort())}})
	d := net.Dialer{Control: small}
	c, err := d.Dial("tcp4", netip.AddrPortFrom(p.cfg.DevAddr, port).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	go func() {
		// In small writes: the relay reads them short and keeps them in
		// user space, so what the endpoint does not take is held in a
		// buffer rather than a pipe.
		for b := data; len(b) > 0; b = b[min(len(b), 1000):] {
			if _, err := c.Write(b[:min(len(b), 1000)]); err != nil {
				return
			}
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	back, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, data) {
		t.Fatalf("client received %d bytes, differing from the %d sent", len(back), len(data))
	}
	select {
	case sent := <-got:
		if !bytes.Equal(sent, data) {
			t.Fatalf("endpoint received %d bytes, differing from the %d sent", len(sent), len(data))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the endpoint never saw the client's end")
	}
}

// proxiedPair serves a service port through a dev-mode proxy to a
// listener the test accepts on itself; each call of the returned dial makes
// one connection through the proxy and returns both ends.
func proxiedPair(t *testing.T, svc string) (p *Proxy, dial func() (client, endpoint *net.TCPConn)) {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p = devProxy(t, Config{})
	port := freePort(t, p.cfg.DevAddr)
	p.Update(&Table{Ports: []ServicePort{tcpPort(svc, port, ln.Addr().(*net.TCPAddr).AddrPort())}})
	return p, func() (client, endpoint *net.TCPConn) {
		t.Helper()
		client, err := net.DialTCP("tcp4", nil, net.TCPAddrFromAddrPort(netip.AddrPortFrom(p.cfg.DevAddr, port)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		client.SetDeadline(time.Now().Add(10 * time.Second))
		if endpoint, err = ln.AcceptTCP(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { endpoint.Close() })
		endpoint.SetDeadline(time.Now().Add(10 * time.Second))
		return client, endpoint
	}
}

// A reset on one side is passed on as a reset, not as a clean end: a
// client must not take a cut-off response for a whole one.
func TestResetIsPassedOn(t *testing.T) {
	_, dial := proxiedPair(t, "reset")
	// The endpoint answers part of a response, then resets.
	client, endpoint := dial()
	endpoint.Write([]byte("partial"))
	buf := make([]byte, 7)
	if _, err := io.ReadFull(client, buf); err != nil {
		t.Fatal(err)
	}
	endpoint.SetLinger(0)
	endpoint.Close()
	if _, err := client.Read(buf); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client read after the endpoint's reset: %v, want a connection reset", err)
	}
	// The client resets.
	client, endpoint = dial()
	client.Write([]byte("x"))
	if _, err := io.ReadFull(endpoint, buf[:1]); err != nil {
		t.Fatal(err)
	}
	client.SetLinger(0)
	client.Close()
	if _, err := endpoint.Read(buf); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("endpoint read after the client's reset: %v, want a connection reset", err)
	}
}

// An idle proxied connection costs no goroutine (the old design held two
// per connection, with their stacks): 200 of them leave the goroutine
// count where it was, give or take the relay's own loops.
func TestIdleConnectionsHoldNoGoroutines(t *testing.T) {
	_, dial := proxiedPair(t, "idle")
	before := runtime.NumGoroutine()
	const n = 200
	// One byte each way on every connection: each is established through
	// the proxy and handed to a loop, not waiting in a dial.
	buf := make([]byte, 1)
	for range n {
		client, endpoint := dial()
		client.Write([]byte("a"))
		endpoint.Write([]byte("b"))
		if _, err := io.ReadFull(endpoint, buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, buf); err != nil {
			t.Fatal(err)
		}
	}
	if grew := runtime.NumGoroutine() - before; grew > runtime.GOMAXPROCS(0)+5 {
		t.Errorf("%d idle connections through the proxy: %d more goroutines, want at most a loop per CPU", n, grew)
	}
}

// Bytes are counted each way once a connection ends.
func TestBytesCounted(t *testing.T) {
	b := startBackend(t, "counted") // greets with "counted\n", then echoes
	p := devProxy(t, Config{})
	sp := tcpPort("bytes", freePort(t, p.cfg.DevAddr), b.addr())
	p.Update(&Table{Ports: []ServicePort{sp}})
	bytes := func(dir string) float64 {
		return testkit.Metric(t, "rune_proxy_bytes_total", map[string]string{"service": "bytes", "direction": dir})
	}
	want := map[string]float64{"to_endpoint": bytes("to_endpoint") + 11, "from_endpoint": bytes("from_endpoint") + 8 + 11}
	c, err := dialVia(t, netip.AddrPortFrom(p.cfg.DevAddr, sp.VIP.Port()))
	if err != nil {
		t.Fatal(err)
	}
	c.echo(t, "0123456789")
	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for dir, n := range want {
		for {
			got := bytes(dir)
			if got == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v bytes counted, want %v", dir, got, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
}
