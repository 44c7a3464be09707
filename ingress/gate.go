package ingress

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// gate is what the net/http path reads an HTTP/1 client connection
// through. net/http's parser is lenient where a proxy must not be: it takes
// Transfer-Encoding over a Content-Length beside it and keeps the
// connection, ignores Transfer-Encoding on HTTP/1.0, accepts a repeated
// Content-Length and folds obs-fold lines, each of which lets a client (or
// a proxy in front of the edge that frames differently) smuggle a request.
// The gate reads every request head first and checks its framing with
// requestFraming; a head that fails is replaced by one net/http answers 400
// to and closes on, so that the refusal takes its turn after the responses
// before it. It then follows the body's framing to find the next head,
// holds chunked bodies to the fast path's rules and trailer filter, and
// applies the client timeouts net/http has no equivalent for: the header
// timeout from a head's first byte, body and send inactivity.
//
// Once net/http hands the connection over after a 101 protocol switch (see
// statusWriter.Hijack) the gate passes bytes through.
type gate struct {
	net.Conn
	br *bufio.Reader

	// Read state, owned by whichever goroutine net/http reads with.
	state   gateState
	after   gateState // the state once out is delivered
	head    []byte    // the head being read
	out     []byte    // bytes checked and owed to net/http
	started bool      // the head being read has its first byte: the header timeout runs
	remain  int64     // bytes left of a Content-Length body
	chunk   chunkFollow
	header  time.Duration
	body    inactivity

	mu      sync.Mutex // read deadlines, failure
	httpDL  time.Time  // the read deadline as net/http last set it
	ownDL   time.Time  // the header or body timeout's; zero: none
	failure error      // why a body was refused or cut off, for the error handler

	send inactivity
}

type gateState uint8

const (
	gateHead    gateState = iota // reading a head
	gateOwe                      // delivering out, then after
	gateBody                     // in a Content-Length body
	gateChunked                  // in a chunked body, as chunk follows it
	gateClosed                   // after a refusal: nothing more is read
	gatePass                     // hijacked: bytes pass through
)

// poison is what net/http gets in place of a refused head: a request line
// it cannot parse, which it answers "400 Bad Request" to before closing.
const poison = "REFUSED-AMBIGUOUS-FRAMING\r\n\r\n"

// gateHeadLimit is as far as net/http reads for a head before answering
// 431, so that every head net/http might accept is checked whole.
const gateHeadLimit = maxHeaderBytes + 4096

var (
	errBodyTimeout = errors.New("request body inactivity timeout")
	errGateClosed  = errors.New("connection closed after a framing error")
)

func newGate(c net.Conn, to Timeouts) *gate {
	return &gate{
		Conn: c, br: bufio.NewReaderSize(c, fastBufSize), header: to.ClientHeader,
		body: inactivity{d: to.ClientBody}, send: inactivity{d: to.Send},
	}
}

func (g *gate) Read(p []byte) (int, error) {
	for {
		switch g.state {
		case gateOwe, gatePass:
			if len(g.out) > 0 {
				n := copy(p, g.out)
				g.out = g.out[n:]
				return n, nil
			}
			if g.state == gatePass {
				return g.br.Read(p)
			}
			g.state = g.after
		case gateHead:
			if err := g.readHead(); err != nil {
				return 0, err
			}
		case gateBody:
			if g.remain == 0 {
				g.endBody()
				continue
			}
			n, err := g.readData(p, g.remain)
			g.remain -= int64(n)
			return n, err
		case gateChunked:
			switch g.chunk.stage {
			case chunkData:
				n, err := g.readData(p, g.chunk.remain)
				g.chunk.data(n)
				return n, err
			case chunkDone:
				g.endBody()
			default:
				if err := g.chunkLine(); err != nil {
					return 0, g.fail(err)
				}
			}
		case gateClosed:
			return 0, errGateClosed
		}
	}
}

// readHead reads the next head and decides what net/http gets for it. It
// may fail with a timeout when net/http aborts a background read, and is
// then called again to read on.
func (g *gate) readHead() error {
	if !g.started {
		if g.head = g.head[:0]; cap(g.head) > 64<<10 {
			g.head = nil // a rare huge head: do not keep its buffer
		}
		if _, err := g.br.Peek(1); err != nil {
			return err
		}
		g.started = true
		g.setOwn(time.Now().Add(g.header))
	}
	err := readHead(&g.head, g.br, gateHeadLimit)
	if err == errHeadTooLarge {
		// net/http answers 431 and closes without reading further.
		g.setOwn(time.Time{})
		g.out, g.state = g.head, gatePass
		return nil
	}
	if err != nil {
		return err
	}
	g.started = false
	g.setOwn(time.Time{})
	fr, ok := requestFraming(g.head)
	g.out, g.state = g.head, gateOwe // head is reused once out is delivered
	switch {
	case !ok:
		g.out, g.after = []byte(poison), gateClosed
	case fr.chunked:
		g.after, g.chunk = gateChunked, chunkFollow{}
	case fr.length > 0:
		g.after, g.remain = gateBody, fr.length
	default:
		g.after = gateHead
	}
	return nil
}

// readData reads at most n bytes of body data for net/http.
func (g *gate) readData(p []byte, n int64) (int, error) {
	g.renewBody()
	m, err := g.br.Read(p[:min(int64(len(p)), n)])
	if err != nil {
		err = g.fail(err)
	}
	return m, err
}

// chunkLine checks one line of chunked framing and owes it to net/http,
// less a trailer field that forbiddenTrailer names.
func (g *gate) chunkLine() error {
	g.renewBody()
	line, err := readChunkLine(g.br)
	if err != nil {
		return err
	}
	trailer, err := g.chunk.line(line[:len(line)-2])
	if err != nil {
		return err
	}
	g.out, g.state, g.after = line, gateOwe, gateChunked
	if trailer != nil && forbiddenTrailer(trailer) {
		g.out = nil
	}
	return nil
}

// fail ends the gate after a body read or framing error: net/http's body
// reader gets err, the error handler the reason.
func (g *gate) fail(err error) error {
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		err = errBodyTimeout
	}
	g.mu.Lock()
	g.failure = err
	g.mu.Unlock()
	g.state = gateClosed
	return err
}

// bodyFailure is why the gate cut the request body off, if it did.
func (g *gate) bodyFailure() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failure
}

func (g *gate) renewBody() {
	if g.br.Buffered() == 0 {
		if t := g.body.due(); !t.IsZero() {
			g.setOwn(t)
		}
	}
}

func (g *gate) endBody() {
	g.setOwn(time.Time{})
	g.body.at = time.Time{}
	g.state = gateHead
}

// setOwn sets the gate's own read deadline; the earlier of it and
// net/http's applies, so that neither can lift the other's (net/http
// aborts a background read with a deadline in the past).
func (g *gate) setOwn(t time.Time) {
	g.mu.Lock()
	g.ownDL = t
	g.applyLocked()
	g.mu.Unlock()
}

func (g *gate) applyLocked() error {
	dl := g.httpDL
	if !g.ownDL.IsZero() && (dl.IsZero() || g.ownDL.Before(dl)) {
		dl = g.ownDL
	}
	return g.Conn.SetReadDeadline(dl)
}

func (g *gate) SetReadDeadline(t time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.httpDL = t
	return g.applyLocked()
}

func (g *gate) SetDeadline(t time.Time) error {
	g.SetWriteDeadline(t)
	return g.SetReadDeadline(t)
}

func (g *gate) Write(p []byte) (int, error) {
	if t := g.send.due(); !t.IsZero() {
		g.Conn.SetWriteDeadline(t)
	}
	return g.Conn.Write(p)
}

// CloseWrite lets net/http half-close the connection before closing it,
// so a client still sending gets the response rather than a reset.
func (g *gate) CloseWrite() error {
	if cw, ok := g.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// hijacked passes the rest of the connection through: it is no longer
// HTTP/1. net/http has stopped reading it by then.
func (g *gate) hijacked() {
	if g.state == gateHead && g.started {
		g.out = g.head // a partial head read ahead is the tunnel's first bytes
	}
	g.state = gatePass
	g.setOwn(time.Time{})
}

type (
	connKey     struct{}
	tlsStateKey struct{}
)

// connContext gives a handed-off connection's gate, and TLS state, to its
// requests: net/http sets Request.TLS only for connections that are a
// *tls.Conn, which a gate is not.
func connContext(ctx context.Context, c net.Conn) context.Context {
	g, ok := c.(*gate)
	if !ok {
		return ctx
	}
	ctx = context.WithValue(ctx, connKey{}, g)
	under := g.Conn
	if rc, ok := under.(*replayConn); ok {
		under = rc.Conn
	}
	if tc, ok := under.(*tls.Conn); ok {
		st := tc.ConnectionState()
		ctx = context.WithValue(ctx, tlsStateKey{}, &st)
	}
	return ctx
}

// gateOf returns the gate a request came through, if any (not HTTP/2).
func gateOf(ctx context.Context) *gate {
	g, _ := ctx.Value(connKey{}).(*gate)
	return g
}
