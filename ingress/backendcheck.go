package ingress

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
)

// backendCheck is what the net/http path's http.Transport reads a backend
// connection through. The Transport is lenient with backends where a proxy
// must not be: it folds obs-fold lines, takes a repeated Content-Length and
// lets Transfer-Encoding win over a Content-Length beside it. The check
// follows the response stream by the fast path's rules, each head parsed
// by responseHead.parse and each body followed by its framing, and at the
// first violation the Transport's read fails: the round trip fails
// (ReverseProxy answers 502) and the Transport closes the connection
// rather than pooling it. So does a response followed by bytes already
// received, which can only have been sent out of turn (the Transport sends
// the next request after the response), as the fast path closes such a
// connection (see exchange).
//
// Whether a response has a body depends on its request's method (HEAD):
// the Transport sends one request at a time on a connection, and
// traceMethod tells the check each request's method before it is sent.
// CONNECT, whose 2xx response is a tunnel, never reaches a backend (405).
type backendCheck struct {
	net.Conn
	br   *bufio.Reader
	head atomic.Bool // the request in flight is a HEAD; set by traceMethod

	// Read state, owned by the Transport's read goroutine.
	state  checkState
	after  checkState // the state once out is delivered
	hd     []byte     // the response head being read
	out    []byte     // checked bytes owed to the Transport
	remain int64      // bytes left of a Content-Length body
	chunk  chunkFollow
	resp   responseHead
	err    error // why reading stopped, returned from then on
}

type checkState uint8

const (
	checkStart   checkState = iota // before a response head
	checkHead                      // reading the rest of a head
	checkOwe                       // delivering out, then after
	checkBody                      // in a Content-Length body
	checkChunked                   // in a chunked body, as chunk follows it
	checkEnd                       // after a response
	checkPass                      // a body the connection's end delimits, or a switched protocol
	checkFailed                    // after an error: err
)

// headPreview is how much of a head goes on before the head is whole and
// checked: enough for the Transport to tell bytes sent on an idle
// connection (and a 408 among them, a backend's notice that it closes
// one), too little to hold a response head.
const headPreview = len("HTTP/1.1 408")

var errBackendOutOfTurn = errors.New("backend sent bytes after its response")

func newBackendCheck(c net.Conn) *backendCheck {
	return &backendCheck{Conn: c, br: bufio.NewReaderSize(c, fastBufSize)}
}

func (c *backendCheck) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		switch c.state {
		case checkOwe:
			if len(c.out) > 0 {
				n := copy(p, c.out)
				c.out = c.out[n:]
				return n, nil
			}
			c.state = c.after
		case checkStart:
			// The start of a head goes on as it arrives. When reading the
			// first byte of a response fails on a reused connection, the
			// Transport takes it for a backend that closed the connection
			// idle and sends the request again; once a byte came, a refusal
			// fails the request. And bytes sent on an idle connection reach
			// the Transport at once, which closes it.
			b, err := c.br.Peek(1)
			if err != nil {
				return 0, c.fail(err)
			}
			b, _ = c.br.Peek(min(c.br.Buffered(), headPreview, len(p)))
			if i := bytes.IndexByte(b, '\n'); i >= 0 {
				b = b[:max(i, 1)] // the rest of the first line is read as part of the head
			}
			c.hd = append(c.hd[:0], b...)
			n := copy(p, b)
			c.br.Discard(n)
			c.state = checkHead
			if b[0] == '\n' { // an empty head: the Transport refuses it too
				c.fail(errBadResponse)
			}
			return n, nil
		case checkHead:
			if err := c.readHead(); err != nil {
				return 0, c.fail(err)
			}
		case checkBody:
			if c.remain == 0 {
				c.state = checkEnd
				continue
			}
			n, err := c.br.Read(p[:min(int64(len(p)), c.remain)])
			c.remain -= int64(n)
			if err != nil {
				err = c.fail(err)
			}
			return n, err
		case checkChunked:
			switch c.chunk.stage {
			case chunkData:
				n, err := c.br.Read(p[:min(int64(len(p)), c.chunk.remain)])
				c.chunk.data(n)
				if err != nil {
					err = c.fail(err)
				}
				return n, err
			case chunkDone:
				c.state = checkEnd
			default:
				line, err := readChunkLine(c.br)
				if err == nil {
					_, err = c.chunk.line(line[:len(line)-2])
				}
				if err != nil {
					return 0, c.fail(err)
				}
				c.out, c.state, c.after = line, checkOwe, checkChunked
			}
		case checkEnd:
			if c.br.Buffered() > 0 {
				return 0, c.fail(errBackendOutOfTurn)
			}
			c.state = checkStart
		case checkPass:
			return c.br.Read(p)
		case checkFailed:
			return 0, c.err
		}
	}
}

// readHead reads the rest of a response head, checks it and decides how
// its body is followed.
func (c *backendCheck) readHead() error {
	if err := readHead(&c.hd, c.br, maxResponseHeaderBytes); err != nil {
		return err
	}
	r := &c.resp
	if !r.parse(c.hd) {
		return errBadResponse
	}
	c.out, c.state = c.hd[min(len(c.hd), headPreview):], checkOwe
	switch {
	case r.code == http.StatusSwitchingProtocols:
		c.after = checkPass
	case r.code < 200:
		c.after = checkStart // the final response follows
	case c.head.Load() || !r.hasBody(nil):
		c.after = checkEnd
	case r.chunked:
		c.after, c.chunk = checkChunked, chunkFollow{}
	case r.contentLength >= 0:
		c.after, c.remain = checkBody, r.contentLength
	default:
		c.after = checkPass
	}
	if cap(c.hd) > 64<<10 {
		c.hd = nil // a rare huge head: do not keep its buffer (out still holds it)
	}
	return nil
}

func (c *backendCheck) fail(err error) error {
	c.state, c.err = checkFailed, err
	return err
}

// traceMethod returns out with a trace that tells the backend connection
// http.Transport picks for it whether it is a HEAD request, before it is
// sent there.
func traceMethod(out *http.Request) *http.Request {
	gotConn := gotOtherConn
	if out.Method == http.MethodHead {
		gotConn = gotHeadConn
	}
	return out.WithContext(httptrace.WithClientTrace(out.Context(), &httptrace.ClientTrace{GotConn: gotConn}))
}

var gotHeadConn, gotOtherConn = gotConn(true), gotConn(false)

func gotConn(head bool) func(httptrace.GotConnInfo) {
	return func(info httptrace.GotConnInfo) {
		if c, ok := info.Conn.(*backendCheck); ok {
			c.head.Store(head)
		}
	}
}
