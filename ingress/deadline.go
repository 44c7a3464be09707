package ingress

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Inactivity timeouts: a deadline kept d ahead of each read or write that
// may wait, so that it bounds how long one makes no progress, not how long
// a whole transfer takes.

// inactivity is one direction's deadline. It moves at most once per slack,
// so that a busy connection does not reset a timer per read or write.
type inactivity struct {
	d  time.Duration
	at time.Time // the deadline last set; zero: none
}

// due returns the deadline to set now, or the zero time if the one set is
// still close enough.
func (a *inactivity) due() time.Time {
	now := time.Now()
	if a.at.After(now.Add(a.d - min(deadlineSlack, a.d/8))) {
		return time.Time{}
	}
	a.at = now.Add(a.d)
	return a.at
}

// clientConn is the fast path's client connection: writes are bounded by
// the send timeout, and reads of a request body streamed by the body
// goroutine by the body timeout. Head and idle reads keep the deadlines
// fastConn sets itself.
type clientConn struct {
	net.Conn
	send inactivity // main goroutine only

	mu   sync.Mutex // the body goroutine's reads against stopBody
	body inactivity
	mode atomic.Uint32 // a bodyMode
}

type bodyMode = uint32

const (
	bodyNone    bodyMode = iota // no body being read: reads keep fastConn's deadlines
	bodyReading                 // the body goroutine reads: the body timeout applies
	bodyStopped                 // the body goroutine is being stopped: reads fail at once
)

func (c *clientConn) Write(p []byte) (int, error) {
	if t := c.send.due(); !t.IsZero() {
		c.Conn.SetWriteDeadline(t)
	}
	return c.Conn.Write(p)
}

func (c *clientConn) Read(p []byte) (int, error) {
	if c.mode.Load() != bodyNone { // only the body goroutine reads then
		c.mu.Lock()
		if c.mode.Load() == bodyReading {
			if t := c.body.due(); !t.IsZero() {
				c.Conn.SetReadDeadline(t)
			}
		}
		c.mu.Unlock()
	}
	return c.Conn.Read(p)
}

// startBody hands reads to the body goroutine (before it starts).
func (c *clientConn) startBody() {
	c.body.at = time.Time{}
	c.mode.Store(bodyReading)
}

// stopBody makes the body goroutine's reads fail, wherever it waits.
func (c *clientConn) stopBody() {
	c.mu.Lock()
	c.mode.Store(bodyStopped)
	c.Conn.SetReadDeadline(aLongTimeAgo)
	c.mu.Unlock()
}

// endBody takes reads back once the body goroutine is done.
func (c *clientConn) endBody() { c.mode.Store(bodyNone) }

var aLongTimeAgo = time.Unix(1, 0)
