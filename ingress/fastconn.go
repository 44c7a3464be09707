package ingress

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// The HTTP/1.1 fast path. Profiles of the ingress built on net/http,
// httputil.ReverseProxy and http.Transport showed most of the CPU per
// proxied request going to the machinery around the four read/write
// syscalls a request needs: per-request objects (Request, Header maps,
// contexts), and hand-offs between the server's connection goroutine and the
// Transport's read and write goroutines. Here each client connection's own
// goroutine reads a request head, forwards it on a pooled backend
// connection, and copies the response back, with reused buffers.
//
// It forwards only what is plainly a proxied HTTP/1.1 request (see
// requestHead.parse and admit). Anything else — HTTP/2, ACME challenges,
// redirects, 404/403/503 answers, WebSocket upgrades, Expect: 100-continue,
// malformed or unusual requests — is handed with the bytes read so far to
// the listener's net/http server, which serves the rest of that connection
// through Ingress.serve, as every request was served before, reading it
// through a gate (gate.go) that refuses ambiguous framing there too.
// Options.DisableFastPath hands every connection over at once.

const (
	fastBufSize            = 4 << 10 // bufio size per client and backend connection, as net/http's
	maxResponseHeaderBytes = 1 << 20 // http.Transport's default
	maxIdleConnsPerBackend = 1024
	// deadlineSlack lets a busy keep-alive connection keep its idle
	// deadline for up to this long instead of resetting a timer per request.
	deadlineSlack = time.Second
	// bodyWriteWait is how long a backend connection may still be taking a
	// request body after its response ended before it is given up, as
	// http.Transport waits before reusing a connection.
	bodyWriteWait = 50 * time.Millisecond
	maxInterim    = 5 // 1xx responses passed on per request, as http.Transport allows
	// maxDialAttempts bounds the endpoints tried for one request when dials fail.
	maxDialAttempts = 3
	// watchInterval is how often a client is checked for having gone away
	// while the backend keeps it waiting.
	watchInterval = 250 * time.Millisecond
)

var (
	errHeadTooLarge   = errors.New("head too large")
	errBadResponse    = errors.New("malformed response head from backend")
	errTooManyInterim = errors.New("too many 1xx responses from backend")
	errSwitching      = errors.New("backend switched protocols without being asked")
	errClientGone     = errors.New("client went away")
	errBackendTimeout = &timeoutError{"timeout awaiting the backend's response head"}
)

// timeoutError is a net.Error that timed out.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

// fastConn is one client connection.
type fastConn struct {
	f        *front
	c        net.Conn // *tls.Conn after the handshake on the TLS listener
	raw      net.Conn // the TCP connection, for peerGone
	cc       clientConn
	br       *bufio.Reader
	bw       *bufio.Writer
	proto    string // for X-Forwarded-Proto
	clientIP string // for X-Forwarded-For
	client   netip.AddrPort
	sni      string      // the TLS handshake's server name; "" on the plain listener
	idle     atomic.Bool // waiting for a request: shutdown may close it
	deadline time.Time   // the read deadline last set on c

	head    []byte // the request head being served, as read
	req     requestHead
	rhead   []byte // the response head being forwarded, as read
	resp    responseHead
	hostRaw []byte // the last Host header and its routing form: keep-alive clients repeat it
	host    string
	count   requestCounter
}

func (fc *fastConn) run() {
	defer fc.f.untrack(fc)
	defer func() {
		// As net/http recovers a handler's panic: a bug serving one
		// connection must not take the node's edge down.
		if err := recover(); err != nil {
			fc.f.i.logger.Error("ingress: panic serving a connection", "client", fc.c.RemoteAddr(), "panic", err, "stack", string(debug.Stack()))
			fc.c.Close()
		}
	}()
	fc.raw = fc.c
	if ta, ok := fc.c.RemoteAddr().(*net.TCPAddr); ok {
		fc.client = ta.AddrPort()
	}
	// As httputil.ProxyRequest.SetXForwarded derives it.
	fc.clientIP, _, _ = net.SplitHostPort(fc.c.RemoteAddr().String())
	if fc.f.tlsConf != nil {
		tc, ok := fc.handshake()
		if !ok {
			return
		}
		if tc.ConnectionState().NegotiatedProtocol == "h2" {
			fc.f.handoff.put(tc)
			return
		}
		fc.c, fc.proto, fc.sni = tc, "https", tc.ConnectionState().ServerName
	}
	if fc.f.i.opts.DisableFastPath {
		fc.f.handoff.put(newGate(fc.c, fc.f.i.to))
		return
	}
	fc.cc = clientConn{Conn: fc.c, send: inactivity{d: fc.f.i.to.Send}, body: inactivity{d: fc.f.i.to.ClientBody}}
	fc.br = bufio.NewReaderSize(&fc.cc, fastBufSize)
	fc.bw = bufio.NewWriterSize(&fc.cc, fastBufSize)
	fc.serve()
}

// handshake runs the TLS handshake, bounded by the header timeout as
// net/http bounds it.
func (fc *fastConn) handshake() (*tls.Conn, bool) {
	fc.idle.Store(true) // shutdown need not wait for a handshake
	defer fc.idle.Store(false)
	dl := time.Now().Add(fc.f.i.to.ClientHeader)
	fc.c.SetReadDeadline(dl)
	fc.c.SetWriteDeadline(dl)
	tc := tls.Server(fc.c, fc.f.tlsConf)
	if err := tc.HandshakeContext(context.Background()); err != nil {
		var rhe tls.RecordHeaderError
		if errors.As(err, &rhe) && rhe.Conn != nil && looksLikeHTTP(rhe.RecordHeader[:]) {
			io.WriteString(rhe.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
		}
		fc.f.i.errLog.Printf("http: TLS handshake error from %s: %v", fc.c.RemoteAddr(), err)
		fc.c.Close()
		return nil, false
	}
	fc.c.SetWriteDeadline(time.Time{})
	fc.deadline = dl
	return tc, true
}

func looksLikeHTTP(hdr []byte) bool {
	switch string(hdr) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// serve answers requests until the connection ends or is handed off.
func (fc *fastConn) serve() {
	for {
		if !fc.awaitRequest() {
			fc.c.Close()
			return
		}
		if err := fc.readHead(); err != nil {
			if err == errHeadTooLarge {
				fc.handOff() // net/http answers 431
				return
			}
			fc.c.Close()
			return
		}
		keep, handoff := fc.forward()
		switch {
		case handoff:
			fc.handOff()
			return
		case !keep:
			fc.closeGracefully()
			return
		}
	}
}

// awaitRequest waits for the first byte of the next request, for at most
// the idle timeout.
func (fc *fastConn) awaitRequest() bool {
	if fc.br.Buffered() > 0 { // pipelined
		return true
	}
	fc.idle.Store(true)
	defer fc.idle.Store(false)
	if fc.f.closing.Load() {
		return false
	}
	idle := fc.f.i.to.ClientIdle
	if now := time.Now(); fc.deadline.Before(now.Add(idle - min(deadlineSlack, idle/8))) {
		fc.setReadDeadline(now.Add(idle))
	}
	_, err := fc.br.Peek(1)
	return err == nil
}

func (fc *fastConn) setReadDeadline(t time.Time) {
	fc.deadline = t
	fc.c.SetReadDeadline(t)
}

// readHead reads the next request head into fc.head. A head that did not
// arrive whole must arrive within the header timeout (slowloris).
func (fc *fastConn) readHead() error {
	fc.head = fc.head[:0]
	if buf, _ := fc.br.Peek(fc.br.Buffered()); headEnd(buf) < 0 {
		fc.setReadDeadline(time.Now().Add(fc.f.i.to.ClientHeader))
	}
	return readHead(&fc.head, fc.br, maxHeaderBytes)
}

// handOff gives the connection to the listener's net/http server, replaying
// what was read of it.
func (fc *fastConn) handOff() {
	buffered, _ := fc.br.Peek(fc.br.Buffered())
	fc.f.handoff.put(newGate(&replayConn{Conn: fc.c, pending: append(fc.head, buffered...)}, fc.f.i.to))
}

// closeGracefully closes after the last response: a half-close first, then
// reading what the client still sends for a moment, so that closing with
// unread data does not reset the connection before the client has read the
// response (as net/http does).
func (fc *fastConn) closeGracefully() {
	if cw, ok := fc.c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		fc.c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		io.Copy(io.Discard, io.LimitReader(fc.c, 256<<10))
	}
	fc.c.Close()
}

// forward serves the request in fc.head if the fast path can, reporting
// whether the connection can carry another request, or that net/http must
// serve it instead.
func (fc *fastConn) forward() (keep, handoff bool) {
	start := time.Now()
	req := &fc.req
	plain := fc.f.tlsConf == nil
	if !req.parse(fc.head) {
		return false, true
	}
	// certmagic's challenge handler answers GET /.well-known/acme-challenge/
	// after unescaping the path: hand over anything that could unescape to it.
	if plain && string(req.method) == "GET" && len(req.target) > 1 && (req.target[1] == '.' || req.target[1] == '%') {
		return false, true
	}
	a := fc.f.i.admit(fc.routeHost(req.host), fc.sni, fc.client, plain)
	if a.verdict != verdictProxy || len(a.rt.backends) == 0 {
		return false, true // serve answers: 404, 503, 403, redirect, 421
	}
	var status int
	keep = true
	if req.via && fc.cameBack() {
		fc.f.i.loop(a.rt.host)
		hasBody := req.chunked || req.contentLength > 0
		status, keep = fc.writeError(http.StatusLoopDetected, hasBody || req.close), !hasBody
	} else {
		status, keep = fc.proxy(a.rt)
	}
	// Counted before the last flush, so that a client that has the whole
	// response also finds it counted (as when net/http served it).
	fc.count.inc(a.rt.host, status, start)
	if fc.bw.Flush() != nil {
		keep = false
	}
	return keep && !req.close, false
}

// cameBack reports whether the request names this edge in its Via header:
// it is one this edge forwarded (see loop.go).
func (fc *fastConn) cameBack() bool {
	for k := range fc.req.fields {
		if f := &fc.req.fields[k]; fieldIs(f.name, "Via") && bytes.Contains(f.value, fc.f.i.via.tok) {
			return true
		}
	}
	return false
}

func (fc *fastConn) routeHost(raw []byte) string {
	if !bytes.Equal(raw, fc.hostRaw) {
		fc.hostRaw = append(fc.hostRaw[:0], raw...)
		fc.host = requestHost(string(raw))
	}
	return fc.host
}
