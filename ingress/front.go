package ingress

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Listener hand-off: a front accepts a listener's connections for the fast
// path (fastconn.go) and gives those it does not serve to net/http.

// front accepts the connections of one listener.
type front struct {
	i       *Ingress
	ln      net.Listener
	tlsConf *tls.Config // nil on the plain HTTP listener
	hsts    []byte      // the Strict-Transport-Security field line for responses; nil for none
	srv     *http.Server
	handoff *connQueue // srv serves the connections put here

	closing atomic.Bool
	mu      sync.Mutex
	conns   map[*fastConn]struct{}
	wg      sync.WaitGroup
}

func newFront(i *Ingress, ln net.Listener, tlsConf *tls.Config, srv *http.Server) *front {
	return &front{i: i, ln: ln, tlsConf: tlsConf, srv: srv, handoff: newConnQueue(ln.Addr()), conns: map[*fastConn]struct{}{}}
}

// serve accepts connections until shutdown.
func (f *front) serve() error {
	var delay time.Duration
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if f.closing.Load() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			f.i.errLog.Printf("ingress: accept error: %v; retrying in %v", err, delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		fc := &fastConn{f: f, c: c, proto: "http"}
		if !f.track(fc) {
			c.Close()
			continue
		}
		go fc.run()
	}
}

func (f *front) track(fc *fastConn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing.Load() {
		return false
	}
	f.conns[fc] = struct{}{}
	f.wg.Add(1)
	return true
}

func (f *front) untrack(fc *fastConn) {
	f.mu.Lock()
	delete(f.conns, fc)
	f.mu.Unlock()
	f.wg.Done()
}

// shutdown stops accepting, closes connections as they go idle, and when
// ctx ends closes the rest, like http.Server.Shutdown.
func (f *front) shutdown(ctx context.Context) error {
	f.closing.Store(true)
	f.ln.Close()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		f.closeConns(false)
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			f.closeConns(true)
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (f *front) closeConns(busyToo bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for fc := range f.conns {
		if busyToo || fc.idle.Load() {
			fc.c.Close()
		}
	}
}

// connQueue is the listener a front's net/http server accepts handed-off
// connections from.
type connQueue struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

func (q *connQueue) put(c net.Conn) {
	select {
	case q.ch <- c:
	case <-q.done:
		c.Close()
	}
}

// replayConn is a connection handed to net/http: it first reads back what
// the fast path had already read.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite lets net/http half-close the connection before closing it, so
// a client that is still sending does not get a reset instead of the
// response.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
