package rune

import (
	"net"
	"sync"
	"time"
)

// slowConn is the net.PacketConn of the miekg/dns server that serves what
// the fast path declines: it reads the packets the fast path hands over and
// writes replies through the fast path's socket, so the full plugin chain
// sees them exactly as on CoreDNS's own socket (same local address, the
// client's address, miekg/dns's parsing, buffer size and FORMERR handling).
type slowConn struct {
	out  *net.UDPConn
	in   chan slowPacket
	done chan struct{}
	once sync.Once
}

type slowPacket struct {
	b    []byte
	addr net.Addr
}

func newSlowConn(out *net.UDPConn) *slowConn {
	return &slowConn{out: out, in: make(chan slowPacket, 1024), done: make(chan struct{})}
}

// deliver queues a copy of p; a full queue drops it, as a full socket
// buffer would.
func (c *slowConn) deliver(p []byte, addr net.Addr) {
	select {
	case c.in <- slowPacket{b: append([]byte(nil), p...), addr: addr}:
	default:
	}
}

// ReadFrom implements net.PacketConn: like a socket, it cuts a packet longer than b.
func (c *slowConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case p := <-c.in:
		return copy(b, p.b), p.addr, nil
	case <-c.done:
		return 0, nil, net.ErrClosed
	}
}

// WriteTo implements net.PacketConn.
func (c *slowConn) WriteTo(b []byte, addr net.Addr) (int, error) { return c.out.WriteTo(b, addr) }

// Close implements net.PacketConn; the socket is the fast path's to close.
func (c *slowConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

// LocalAddr implements net.PacketConn: the address CoreDNS's socket has.
func (c *slowConn) LocalAddr() net.Addr { return c.out.LocalAddr() }

// Deadlines are not needed: miekg/dns sets a read deadline only to poll
// for shutdown, which Close covers.
func (c *slowConn) SetDeadline(time.Time) error      { return nil }
func (c *slowConn) SetReadDeadline(time.Time) error  { return nil }
func (c *slowConn) SetWriteDeadline(time.Time) error { return nil }
