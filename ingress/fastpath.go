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
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runenet/runenet/balance"
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
// through Ingress.serve, as every request was served before.

const (
	fastBufSize            = 4 << 10 // bufio size per client and backend connection, as net/http's
	maxResponseHeaderBytes = 1 << 20 // http.Transport's default
	maxIdleConnsPerBackend = 1024
	idleConnTimeout        = 90 * time.Second
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
)

var (
	errHeadTooLarge   = errors.New("head too large")
	errBadResponse    = errors.New("malformed response head from backend")
	errTooManyInterim = errors.New("too many 1xx responses from backend")
	errSwitching      = errors.New("backend switched protocols without being asked")
)

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

type tlsStateKey struct{}

// connContext gives a handed-off TLS connection's state to its requests:
// net/http sets Request.TLS only for connections that are a *tls.Conn,
// which a replayConn is not.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if rc, ok := c.(*replayConn); ok {
		if tc, ok := rc.Conn.(*tls.Conn); ok {
			st := tc.ConnectionState()
			return context.WithValue(ctx, tlsStateKey{}, &st)
		}
	}
	return ctx
}

// fastConn is one client connection.
type fastConn struct {
	f        *front
	c        net.Conn // *tls.Conn after the handshake on the TLS listener
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
	fc.br = bufio.NewReaderSize(fc.c, fastBufSize)
	fc.bw = bufio.NewWriterSize(fc.c, fastBufSize)
	fc.serve()
}

// handshake runs the TLS handshake, bounded by readHeaderTimeout as
// net/http bounds it.
func (fc *fastConn) handshake() (*tls.Conn, bool) {
	fc.idle.Store(true) // shutdown need not wait for a handshake
	defer fc.idle.Store(false)
	dl := time.Now().Add(readHeaderTimeout)
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
// idleTimeout.
func (fc *fastConn) awaitRequest() bool {
	if fc.br.Buffered() > 0 { // pipelined
		return true
	}
	fc.idle.Store(true)
	defer fc.idle.Store(false)
	if fc.f.closing.Load() {
		return false
	}
	if now := time.Now(); fc.deadline.Before(now.Add(idleTimeout - min(deadlineSlack, idleTimeout/8))) {
		fc.setReadDeadline(now.Add(idleTimeout))
	}
	_, err := fc.br.Peek(1)
	return err == nil
}

func (fc *fastConn) setReadDeadline(t time.Time) {
	fc.deadline = t
	fc.c.SetReadDeadline(t)
}

// readHead reads the next request head into fc.head. A head that did not
// arrive whole must arrive within readHeaderTimeout (slowloris).
func (fc *fastConn) readHead() error {
	fc.head = fc.head[:0]
	if buf, _ := fc.br.Peek(fc.br.Buffered()); headEnd(buf) < 0 {
		fc.setReadDeadline(time.Now().Add(readHeaderTimeout))
	}
	return readHead(&fc.head, fc.br, maxHeaderBytes)
}

// readHead appends a head (through its empty line) from r to dst, failing
// with errHeadTooLarge past limit bytes.
func readHead(dst *[]byte, r *bufio.Reader, limit int) error {
	for {
		line, err := r.ReadSlice('\n')
		*dst = append(*dst, line...)
		if len(*dst) > limit {
			return errHeadTooLarge
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err != nil:
			return err
		case len(line) == 1 || len(line) == 2 && line[0] == '\r':
			return nil
		}
	}
}

// handOff gives the connection to the listener's net/http server, replaying
// what was read of it.
func (fc *fastConn) handOff() {
	buffered, _ := fc.br.Peek(fc.br.Buffered())
	fc.f.handoff.put(&replayConn{Conn: fc.c, pending: append(fc.head, buffered...)})
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
	status, keep := fc.proxy(a.rt)
	// Counted before the last flush, so that a client that has the whole
	// response also finds it counted (as when net/http served it).
	fc.count.inc(a.rt.host, status)
	if fc.bw.Flush() != nil {
		keep = false
	}
	return keep && !req.close, false
}

func (fc *fastConn) routeHost(raw []byte) string {
	if !bytes.Equal(raw, fc.hostRaw) {
		fc.hostRaw = append(fc.hostRaw[:0], raw...)
		fc.host = requestHost(string(raw))
	}
	return fc.host
}

// proxy forwards the request to one of rt's endpoints and the response back,
// and returns the status for the request metric and whether the client
// connection is still in step for another request.
func (fc *fastConn) proxy(rt *route) (status int, keep bool) {
	req := &fc.req
	hasBody := req.chunked || req.contentLength > 0
	// As http.Transport does, a request is sent again only when the backend
	// cannot have acted on it: the dial failed, or it has no body and an
	// idempotent method, and a reused connection turned out closed before
	// any response came back.
	replayable := !hasBody && idempotent(req.method)
	dials, resent := 0, false
	for {
		b := balance.Pick(rt.backends, nil, time.Now().UnixNano())
		bc, reused, err := fc.f.i.backendConn(b, !replayable)
		if err != nil {
			fc.f.i.logger.Debug("proxying to backend failed", "backend", b.addr, "host", rt.host, "error", err)
			// Nothing was sent: another endpoint may answer. The failed one
			// is ejected now, so pick avoids it.
			if dials++; dials < min(len(rt.backends), maxDialAttempts) {
				continue
			}
			return fc.writeError(http.StatusBadGateway, hasBody || req.close), !hasBody
		}
		b.inflight.Add(1)
		status, keep, silent, err := fc.exchange(bc)
		b.inflight.Add(-1)
		if err == nil {
			return status, keep
		}
		if silent && reused && replayable && !resent {
			resent = true
			continue
		}
		fc.f.i.logger.Debug("proxying to backend failed", "backend", b.addr, "host", rt.host, "error", err)
		if status == 0 {
			return fc.writeError(http.StatusBadGateway, !keep || req.close), keep
		}
		return status, false // the response was cut short: only closing tells the client
	}
}

// idempotent reports the methods http.Transport retries.
func idempotent(method []byte) bool {
	switch string(method) {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return false
}

// exchange sends the request on bc and copies the response to the client.
// On error, status is 0 if no final response head reached the client,
// silent tells that the backend sent nothing at all, and keep whether the
// client connection is still in step.
func (fc *fastConn) exchange(bc *backendConn) (status int, keep, silent bool, err error) {
	req := &fc.req
	fc.writeRequestHead(bc.bw)
	var bodyDone chan error
	var sendErr error
	if n := req.contentLength; !req.chunked && int64(fc.br.Buffered()) >= n {
		// No body, or all of it came with the head: send it along. This
		// reads nothing more from the client, and consumes the body even
		// if sending fails, so the client connection stays in step.
		if n > 0 {
			body, _ := fc.br.Peek(int(n))
			bc.bw.Write(body)
			fc.br.Discard(int(n))
		}
		// On a write error the backend may still have answered (and
		// closed): read on.
		sendErr = bc.bw.Flush()
	} else {
		// The body is still arriving: send it from its own goroutine while
		// this one waits for the response, so that a backend answering
		// before reading it all does not leave both sides waiting.
		fc.setReadDeadline(time.Time{}) // uploads may take their time
		bodyDone = make(chan error, 1)
		chunked, pool := req.chunked, &fc.f.i.bufPool
		go func() {
			var err error
			if chunked {
				err = copyChunked(bc.bw, fc.br, pool)
			} else {
				err = copyBody(bc.bw, fc.br, n, false, pool)
			}
			if err == nil {
				err = bc.bw.Flush()
			}
			bodyDone <- err
		}()
	}
	// bodySent waits for the body goroutine and reports whether the whole
	// body went out. If it is still at it after wait, it is stopped, wherever
	// it waits: on the backend (closed) or on the client (whose connection
	// then closes too, being out of step).
	bodySent := func(wait time.Duration) bool {
		if bodyDone == nil {
			return true
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case err := <-bodyDone:
			return err == nil
		case <-t.C:
			bc.close()
			fc.setReadDeadline(time.Unix(1, 0))
			<-bodyDone
			return false
		}
	}

	interim, err := fc.readResponseHead(bc)
	if err != nil {
		bc.close()
		inline := bodyDone == nil
		bodySent(0)
		return 0, inline, interim == 0 && len(fc.rhead) == 0, err
	}
	resp := &fc.resp
	// A response with a body but no framing ends when the backend closes;
	// the client gets it chunked, so its connection can stay open.
	hasBody := resp.hasBody(req.method)
	unframed := hasBody && !resp.chunked && resp.contentLength < 0
	fc.writeResponseHead(resp, hasBody && (resp.chunked || unframed), req.close)
	// The end of the response is left in fc.bw for forward to flush.
	switch {
	case !hasBody:
	case resp.chunked:
		err = copyChunked(fc.bw, bc.br, &fc.f.i.bufPool)
	default:
		err = copyBody(fc.bw, bc.br, resp.contentLength, unframed, &fc.f.i.bufPool)
	}
	sent := bodySent(bodyWriteWait)
	if err != nil || sendErr != nil || !sent || resp.close || unframed {
		bc.close()
	} else {
		bc.release()
	}
	if cap(fc.rhead) > 64<<10 {
		fc.rhead = nil // a rare huge head: do not keep its buffer
	}
	return resp.code, sent && err == nil, false, err
}

// readResponseHead reads the backend's final response head into fc.resp,
// passing interim 1xx responses (103 Early Hints) on to the client.
func (fc *fastConn) readResponseHead(bc *backendConn) (interim int, err error) {
	for n := 0; ; n++ {
		fc.rhead = fc.rhead[:0]
		if err := readHead(&fc.rhead, bc.br, maxResponseHeaderBytes); err != nil {
			return interim, err
		}
		if !fc.resp.parse(fc.rhead) {
			return interim, errBadResponse
		}
		switch code := fc.resp.code; {
		case code >= 200:
			return interim, nil
		case code == http.StatusSwitchingProtocols:
			return interim, errSwitching // upgrades are served by net/http
		case n == maxInterim:
			return interim, errTooManyInterim
		case code != http.StatusContinue: // the client did not ask for 100
			interim++
			fc.writeResponseHead(&fc.resp, false, false)
			if err := fc.bw.Flush(); err != nil {
				return interim, err
			}
		}
	}
}

// writeRequestHead writes the request as the backend gets it: the client's
// request line and header fields less the hop-by-hop ones, the edge's
// X-Forwarded-*, and framing from what was parsed.
func (fc *fastConn) writeRequestHead(w *bufio.Writer) {
	req := &fc.req
	w.Write(req.method)
	w.WriteByte(' ')
	w.Write(req.target)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.Write(req.host)
	w.WriteString("\r\n")
	writeFields(w, req.fields)
	if req.teTrailers {
		w.WriteString("Te: trailers\r\n")
	}
	w.WriteString("X-Forwarded-For: ")
	w.WriteString(fc.clientIP)
	w.WriteString("\r\nX-Forwarded-Host: ")
	w.Write(req.host)
	w.WriteString("\r\nX-Forwarded-Proto: ")
	w.WriteString(fc.proto)
	w.WriteString("\r\n")
	writeFraming(w, req.contentLength, req.chunked)
	w.WriteString("\r\n")
}

// writeResponseHead writes a response head to the client: the backend's
// status and fields less the hop-by-hop ones, framing, and Connection:
// close when this is the connection's last response.
func (fc *fastConn) writeResponseHead(resp *responseHead, chunked, closing bool) {
	w := fc.bw
	w.WriteString("HTTP/1.1 ")
	w.Write(resp.status[:3])
	w.WriteByte(' ')
	if len(resp.status) > 4 {
		w.Write(resp.status[4:])
	}
	w.WriteString("\r\n")
	if resp.code >= 200 {
		w.Write(fc.f.hsts) // first, so that it wins over a backend's (see HSTS)
	}
	writeFields(w, resp.fields)
	if !resp.date && resp.code >= 200 {
		// A proxy adds the Date an origin left out (RFC 9110 6.6.1), as
		// net/http does.
		w.Write(dateField(time.Now()))
	}
	length := resp.contentLength
	if resp.code < 200 || resp.code == http.StatusNoContent {
		length = -1
	}
	writeFraming(w, length, chunked)
	if closing {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
}

func writeFields(w *bufio.Writer, fields []headerField) {
	for k := range fields {
		if f := &fields[k]; !f.drop {
			w.Write(f.name)
			w.WriteString(": ")
			w.Write(f.value)
			w.WriteString("\r\n")
		}
	}
}

func writeFraming(w *bufio.Writer, length int64, chunked bool) {
	switch {
	case chunked:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	case length >= 0:
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(w.AvailableBuffer(), length, 10)) // formatted in place, no allocation
		w.WriteString("\r\n")
	}
}

// writeError answers with an empty error response, as the ReverseProxy
// error handler does (left in fc.bw for forward to flush).
func (fc *fastConn) writeError(code int, closing bool) int {
	fc.bw.WriteString("HTTP/1.1 ")
	fc.bw.Write(strconv.AppendInt(fc.bw.AvailableBuffer(), int64(code), 10))
	fc.bw.WriteByte(' ')
	fc.bw.WriteString(http.StatusText(code))
	fc.bw.WriteString("\r\n")
	fc.bw.Write(fc.f.hsts)
	fc.bw.Write(dateField(time.Now()))
	fc.bw.WriteString("Content-Length: 0\r\n")
	if closing {
		fc.bw.WriteString("Connection: close\r\n")
	}
	fc.bw.WriteString("\r\n")
	return code
}

// dateField returns a Date header line for now, formatted once a second.
func dateField(now time.Time) []byte {
	sec := now.Unix()
	if d := lastDate.Load(); d != nil && d.sec == sec {
		return d.line
	}
	line := now.UTC().AppendFormat([]byte("Date: "), http.TimeFormat)
	d := &formattedDate{sec: sec, line: append(line, "\r\n"...)}
	lastDate.Store(d)
	return d.line
}

type formattedDate struct {
	sec  int64
	line []byte
}

var lastDate atomic.Pointer[formattedDate]

// copyBody copies n bytes (until EOF when n < 0) from src to dst, as chunks
// if chunk is set. It flushes dst whenever src has nothing buffered, that
// is, before a read that may wait: a body that arrived whole leaves in one
// write with its head, a streamed one (server-sent events, long polls) is
// passed on as it comes. Long bodies are read and written in large pieces
// through a pooled buffer.
func copyBody(dst *bufio.Writer, src *bufio.Reader, n int64, chunk bool, pool *bufferPool) error {
	var big []byte
	defer func() {
		if big != nil {
			pool.Put(big)
		}
	}()
	for n != 0 {
		if src.Buffered() == 0 {
			if err := dst.Flush(); err != nil {
				return err
			}
		}
		var p []byte
		var err error
		fromBuffer := src.Buffered() > 0 || (n > 0 && n <= int64(src.Size()))
		if fromBuffer {
			if _, err = src.Peek(1); err == nil {
				p, _ = src.Peek(int(limit(n, src.Buffered())))
			}
		} else {
			if big == nil {
				big = pool.Get()
			}
			var m int
			m, err = src.Read(big[:limit(n, len(big))]) // bufio reads straight into big
			p = big[:m]
		}
		if len(p) == 0 {
			if err == io.EOF && n < 0 {
				break // the end of a body delimited by the connection's end
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				return err
			}
			continue
		}
		if chunk {
			writeChunkHeader(dst, int64(len(p)))
		}
		if _, err := dst.Write(p); err != nil {
			return err
		}
		if chunk {
			dst.WriteString("\r\n")
		}
		if fromBuffer {
			src.Discard(len(p))
		}
		if n > 0 {
			n -= int64(len(p))
		}
	}
	if chunk {
		dst.WriteString("0\r\n\r\n")
	}
	return nil
}

func limit(n int64, max int) int {
	if n >= 0 && n < int64(max) {
		return int(n)
	}
	return max
}

func writeChunkHeader(w *bufio.Writer, n int64) {
	w.Write(strconv.AppendInt(w.AvailableBuffer(), n, 16))
	w.WriteString("\r\n")
}

// copyChunked forwards a chunked body from src to dst, re-framing it from
// what it parsed (chunk sizes without extensions, the data, the trailer
// fields), so that the receiver cannot frame it differently from us. Bare
// LF, over-long lines and malformed sizes are refused, as net/http refuses
// them.
func copyChunked(dst *bufio.Writer, src *bufio.Reader, pool *bufferPool) error {
	for {
		line, err := chunkLine(dst, src)
		if err != nil {
			return err
		}
		size, ok := parseChunkSize(line)
		if !ok {
			return errChunkedFraming
		}
		if size == 0 {
			break
		}
		writeChunkHeader(dst, size)
		if err := copyBody(dst, src, size, false, pool); err != nil {
			return err
		}
		if line, err = chunkLine(dst, src); err != nil {
			return err
		} else if len(line) != 0 {
			return errChunkedFraming
		}
		dst.WriteString("\r\n")
	}
	dst.WriteString("0\r\n")
	for total := 0; ; {
		line, err := chunkLine(dst, src)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			break
		}
		if total += len(line); total > maxHeaderBytes {
			return errTrailerTooLong
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) || !validFieldValue(line[colon+1:]) {
			return errChunkedFraming
		}
		dst.Write(line)
		dst.WriteString("\r\n")
	}
	_, err := dst.WriteString("\r\n")
	return err
}

// chunkLine reads one CRLF-terminated line of chunked framing, flushing dst
// first if src does not hold all of it yet.
func chunkLine(dst *bufio.Writer, src *bufio.Reader) ([]byte, error) {
	if buf, _ := src.Peek(src.Buffered()); bytes.IndexByte(buf, '\n') < 0 {
		if err := dst.Flush(); err != nil {
			return nil, err
		}
	}
	line, err := src.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull:
		return nil, errChunkedFraming
	case err == io.EOF:
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	case len(line) < 2 || line[len(line)-2] != '\r':
		return nil, errChunkedFraming
	}
	return line[:len(line)-2], nil
}

// parseChunkSize parses "hex[;extensions]", ignoring extensions as
// net/http does.
func parseChunkSize(line []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(line) && isHex(line[i]); i++ {
		if i == 15 {
			return 0, false
		}
		c := line[i]
		switch {
		case c <= '9':
			c -= '0'
		case c >= 'a':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		n = n<<4 | int64(c)
	}
	if i == 0 {
		return 0, false
	}
	// Like net/http: extensions right after the size, or trailing blanks.
	rest := line[i:]
	if len(rest) > 0 && rest[0] == ';' {
		return n, validFieldValue(rest)
	}
	return n, len(trimOWS(rest)) == 0
}
