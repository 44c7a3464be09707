package ingress

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http/httputil"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runenet/runenet/balance"
	"github.com/runenet/runenet/internal/connpeek"
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
	rd     backendReader // what br reads
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
}

// backendConn returns an idle connection to b, or dials one; reused tells
// which. An idle connection is first checked to be still open and silent:
// one the backend closed cannot take a request that could not be sent
// again, and one with bytes the backend sent out of turn (a body after a
// HEAD response, bytes past a Content-Length) must not have them read as
// the next response.
func (i *Ingress) backendConn(b *backend) (bc *backendConn, reused bool, err error) {
	for {
		if bc = b.takeIdle(time.Now(), i.to.BackendIdle); bc == nil {
			break
		}
		if bc.alive() {
			return bc, true, nil
		}
		bc.close()
	}
	c, err := i.dialBackend(context.Background(), b.addr)
	if err != nil {
		return nil, false, err
	}
	bc = &backendConn{b: b, c: c, rd: backendReader{c: c}, bw: bufio.NewWriterSize(c, fastBufSize)}
	bc.br = bufio.NewReaderSize(&bc.rd, fastBufSize)
	return bc, false, nil
}

// backendReader reads a backend connection for an exchange. While the
// backend keeps it waiting it checks every watchInterval that the client is
// still there (a client that went away cancels the exchange at once, as
// net/http's request context does), and it bounds the wait for the
// response head.
type backendReader struct {
	c      net.Conn
	client net.Conn  // the client's TCP connection, for peerGone
	limit  time.Time // when the response head is due; zero once it came
	dl     time.Time // the read deadline set on c
}

func (r *backendReader) watch(client net.Conn, headTimeout time.Duration) {
	r.client, r.limit = client, time.Now().Add(headTimeout)
}

func (r *backendReader) headDone() { r.limit = time.Time{} }
func (r *backendReader) unwatch()  { r.client, r.limit = nil, time.Time{} }

func (r *backendReader) Read(p []byte) (int, error) {
	for {
		// The deadline moves at most every half interval, so that a busy
		// connection does not reset a timer per read.
		now := time.Now()
		if next := now.Add(watchInterval); r.dl.Before(now.Add(watchInterval/2)) || !r.limit.IsZero() && r.dl.After(r.limit) {
			if !r.limit.IsZero() && r.limit.Before(next) {
				next = r.limit
			}
			r.dl = next
			r.c.SetReadDeadline(next)
		}
		n, err := r.c.Read(p)
		if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		switch {
		case !r.limit.IsZero() && !time.Now().Before(r.limit):
			return 0, errBackendTimeout
		case r.client != nil && peerGone(r.client):
			return 0, errClientGone
		}
	}
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
// sat idle past maxIdle on the way.
func (b *backend) takeIdle(now time.Time, maxIdle time.Duration) *backendConn {
	b.mu.Lock()
	defer b.mu.Unlock()
	for n := len(b.idle); n > 0; n-- {
		bc := b.idle[n-1]
		b.idle[n-1] = nil
		b.idle = b.idle[:n-1]
		if now.Sub(bc.idleAt) < maxIdle {
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

// connAlive: an idle keep-alive connection the backend has closed reads EOF,
// one that is fine would block. One syscall, so the fast path only asks
// before sending a request it could not send again; where the socket
// cannot be peeked at, a closed connection shows when the request fails.
func connAlive(c net.Conn) bool {
	idle, checked := connpeek.Idle(c)
	return idle || !checked
}
