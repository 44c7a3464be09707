package raft

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/runenet/runenet/internal/connpeek"
)

// Forwarded requests reuse connections: a follower under load would
// otherwise pay a TCP and TLS handshake per write. A connection carries one
// request at a time (request frame, then reply frame), so a reply always
// belongs to the request just sent, and an idle one goes back to a pool.
const (
	// maxIdleForward is how many idle connections a node keeps per peer:
	// enough for every concurrent forward a busy follower makes.
	maxIdleForward = 64
	// forwardIdleTimeout: an idle connection older than this is closed
	// rather than reused.
	forwardIdleTimeout = time.Minute
	// forwardServeIdle is how long the receiving side keeps a connection
	// that sends nothing; longer than forwardIdleTimeout, so it never
	// closes one the sender may still pick.
	forwardServeIdle = 5 * time.Minute
)

// forwardConn is one connection to a peer's forwarding stream.
type forwardConn struct {
	conn *tls.Conn
	r    *bufio.Reader
	idle time.Time // when it went back to the pool
}

// forwardPool keeps idle forwarding connections per peer address.
type forwardPool struct {
	dial func(ctx context.Context, addr string) (*tls.Conn, error)

	mu     sync.Mutex
	idle   map[hraft.ServerAddress][]*forwardConn
	closed bool
}

func newForwardPool(dial func(context.Context, string) (*tls.Conn, error)) *forwardPool {
	return &forwardPool{dial: dial, idle: map[hraft.ServerAddress][]*forwardConn{}}
}

// forward sends req to addr on a pooled or new connection and returns the
// reply. An error wraps ErrNotSent only when the request frame certainly
// did not reach the peer whole: no connection, or a write that failed (the
// peer acts only on a complete frame). A connection that failed in any way
// is closed, never reused.
func (p *forwardPool) forward(ctx context.Context, addr hraft.ServerAddress, req []byte) ([]byte, error) {
	fc, err := p.get(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotSent, err)
	}
	reply, reusable, err := fc.roundTrip(ctx, req)
	if err != nil || !reusable {
		fc.conn.Close()
		return reply, err
	}
	p.put(addr, fc)
	return reply, nil
}

// get takes the most recently used live connection to addr, or dials one.
func (p *forwardPool) get(ctx context.Context, addr hraft.ServerAddress) (*forwardConn, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, net.ErrClosed
		}
		conns := p.idle[addr]
		if len(conns) == 0 {
			p.mu.Unlock()
			break
		}
		fc := conns[len(conns)-1]
		p.idle[addr] = conns[:len(conns)-1]
		p.mu.Unlock()
		if time.Since(fc.idle) < forwardIdleTimeout && fc.alive() {
			return fc, nil
		}
		fc.conn.Close()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	conn, err := p.dial(ctx, string(addr))
	if err != nil {
		return nil, err
	}
	return &forwardConn{conn: conn, r: bufio.NewReader(conn)}, nil
}

func (p *forwardPool) put(addr hraft.ServerAddress, fc *forwardConn) {
	fc.idle = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle[addr]) >= maxIdleForward {
		fc.conn.Close()
		return
	}
	p.idle[addr] = append(p.idle[addr], fc)
}

// close closes every idle connection; later forwards fail as not sent.
func (p *forwardPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for addr, conns := range p.idle {
		for _, fc := range conns {
			fc.conn.Close()
		}
		delete(p.idle, addr)
	}
}

// alive reports whether an idle connection is still open. The peer sends
// nothing unasked, so EOF (it closed or restarted), a reset, or stray bytes
// (a TLS alert) all mean it is not.
func (fc *forwardConn) alive() bool {
	return fc.r.Buffered() == 0 && quiet(fc.conn.NetConn())
}

// roundTrip sends one request and reads its reply within ctx. reusable is
// false when ctx's cancellation may have touched the connection's
// deadlines while the reply came in.
func (fc *forwardConn) roundTrip(ctx context.Context, req []byte) (reply []byte, reusable bool, err error) {
	deadline, _ := ctx.Deadline() // zero: none
	fc.conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { fc.conn.SetDeadline(time.Now()) })
	frame := append(binary.AppendUvarint(make([]byte, 0, len(req)+binary.MaxVarintLen64), uint64(len(req))), req...)
	if _, err := fc.conn.Write(frame); err != nil {
		stop()
		return nil, false, fmt.Errorf("%w: %w", ErrNotSent, err)
	}
	reply, err = readFrame(fc.r, maxForward)
	if !stop() || err != nil {
		return reply, false, err
	}
	fc.conn.SetDeadline(time.Time{})
	return reply, true, nil
}

// serveForward answers the requests a peer sends on one connection, one at
// a time, until it hangs up, goes quiet for forwardServeIdle, or the
// transport closes. The peer hanging up cancels the request in progress;
// the handler's context names the peer (peerName).
func (t *tlsTransport) serveForward(conn *tls.Conn) {
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if certs := conn.ConnectionState().PeerCertificates; len(certs) > 0 {
		ctx = context.WithValue(ctx, peerKey{}, nodeNameOf(certs[0]))
	}
	go func() { // closing the transport ends its connections
		select {
		case <-t.closing:
			conn.Close()
		case <-ctx.Done():
		}
	}()
	reqs := make(chan []byte)
	go func() {
		defer cancel()
		r := bufio.NewReader(conn)
		for {
			conn.SetReadDeadline(time.Now().Add(forwardServeIdle))
			req, err := readFrame(r, maxForward)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
					t.logger.Warn("cluster listener: forwarding connection ended", "peer", conn.RemoteAddr(), "err", err)
				}
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		var req []byte
		select {
		case req = <-reqs:
		case <-ctx.Done():
			return
		}
		h := t.handler.Load()
		if h == nil {
			return
		}
		reply := (*h)(ctx, req)
		conn.SetWriteDeadline(time.Now().Add(handshakeTimeout))
		if _, err := conn.Write(append(binary.AppendUvarint(nil, uint64(len(reply))), reply...)); err != nil {
			return
		}
	}
}

// quiet: the pooled connection is open with nothing to read; one that
// cannot be checked is not reused.
func quiet(c net.Conn) bool {
	idle, checked := connpeek.Idle(c)
	return idle && checked
}
