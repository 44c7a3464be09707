package ingress

import (
	"bufio"
	"context"
	"net"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runenet/runenet/balance"
)

// Passive ejection back-off: the first failed dial benches an endpoint for
// ejectBase, each further consecutive failure doubles it up to ejectMax.
const (
	ejectBase = time.Second
	ejectMax  = 30 * time.Second
)

// backend is one endpoint address. Route tables are rebuilt on every View
// change, but backends are kept across rebuilds (see pool) so their in-flight
// counts and ejection state are not reset by unrelated writes.
type backend struct {
	balance.Health
	addr     string
	inflight atomic.Int64
	proxy    *httputil.ReverseProxy

	// Idle connections of the HTTP/1.1 fast path, most recently used last.
	mu      sync.Mutex
	idle    []*backendConn
	retired bool // removed from the routes: connections are closed, not kept
}

// Load is what power-of-two-choices compares: requests in flight.
func (b *backend) Load() int64 { return b.inflight.Load() }

// observeDial feeds a dial's outcome to passive health. A dial the client
// gave up on says nothing about the backend.
func (b *backend) observeDial(ctx context.Context, err error) {
	switch {
	case err == nil:
		b.Succeeded()
	case ctx.Err() == nil:
		b.Failed(time.Now().UnixNano(), ejectBase, ejectMax)
	}
}

// dialBackend dials a backend for either serving path (http.Transport's and
// the fast path's), feeding the outcome to the backend's passive health.
func (i *Ingress) dialBackend(ctx context.Context, addr string) (net.Conn, error) {
	c, err := i.dialer.DialContext(ctx, "tcp", addr)
	if v, ok := i.pool.Load(addr); ok {
		v.(*backend).observeDial(ctx, err)
	}
	return c, err
}

// backendConn is a fast-path connection to a backend, reused across
// requests and client connections like http.Transport's idle connections.
type backendConn struct {
	b      *backend
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
}

// backendConn returns an idle connection to b, or dials one; reused tells
// which. With check, an idle connection is first checked to be still open,
// for a request that could not be sent again if it turned out closed.
func (i *Ingress) backendConn(b *backend, check bool) (bc *backendConn, reused bool, err error) {
	for {
		if bc = b.takeIdle(time.Now()); bc == nil {
			break
		}
		if !check || bc.alive() {
			return bc, true, nil
		}
		bc.close()
	}
	c, err := i.dialBackend(context.Background(), b.addr)
	if err != nil {
		return nil, false, err
	}
	return &backendConn{b: b, c: c, br: bufio.NewReaderSize(c, fastBufSize), bw: bufio.NewWriterSize(c, fastBufSize)}, false, nil
}

// release returns the connection to its backend's idle list.
func (bc *backendConn) release() {
	b := bc.b
	bc.idleAt = time.Now()
	b.mu.Lock()
	if b.retired || len(b.idle) >= maxIdleConnsPerBackend {
		b.mu.Unlock()
		bc.close()
		return
	}
	b.idle = append(b.idle, bc)
	b.mu.Unlock()
}

func (bc *backendConn) close() { bc.c.Close() }

// alive reports whether an idle connection is still open and silent: the
// backend may have closed it while it sat idle.
func (bc *backendConn) alive() bool {
	return bc.br.Buffered() == 0 && connAlive(bc.c)
}

// takeIdle pops the most recently used idle connection, closing any that
// sat idle past idleConnTimeout on the way.
func (b *backend) takeIdle(now time.Time) *backendConn {
	b.mu.Lock()
	defer b.mu.Unlock()
	for n := len(b.idle); n > 0; n-- {
		bc := b.idle[n-1]
		b.idle[n-1] = nil
		b.idle = b.idle[:n-1]
		if now.Sub(bc.idleAt) < idleConnTimeout {
			return bc
		}
		bc.close()
	}
	return nil
}

// closeIdle closes the idle connections that have been idle since before
// cutoff (all of them for the zero time, and for good when retire is set).
func (b *backend) closeIdle(cutoff time.Time, retire bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.retired = b.retired || retire
	kept := b.idle[:0]
	for _, bc := range b.idle {
		if retire || bc.idleAt.Before(cutoff) {
			bc.close()
		} else {
			kept = append(kept, bc)
		}
	}
	clear(b.idle[len(kept):])
	b.idle = kept
}
