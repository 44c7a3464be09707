package ingress

import (
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/runenet/runenet/balance"
)

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
		bc, reused, err := fc.f.i.backendConn(b)
		if err != nil {
			fc.f.i.logger.Debug("proxying to backend failed", "backend", b.addr, "host", rt.host, "error", err)
			// Nothing was sent: another endpoint may answer. The failed one
			// is ejected now, so pick avoids it.
			if dials++; dials < min(len(rt.backends), maxDialAttempts) {
				continue
			}
			return fc.writeError(gatewayError(err), hasBody || req.close), !hasBody
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
		var fault *clientFault
		switch {
		case errors.As(err, &fault):
			if fault.code == statusClientGone {
				return fault.code, false
			}
			return fc.writeError(fault.code, true), false
		case errors.Is(err, errClientGone):
			return statusClientGone, false
		case status == 0:
			return fc.writeError(gatewayError(err), !keep || req.close), keep
		}
		return status, false // the response was cut short: only closing tells the client
	}
}

// statusClientGone is what the request metric counts for a request whose
// client went away before it was answered (nginx's 499).
const statusClientGone = 499

// gatewayError is the answer for a backend that failed: 504 when it did not
// connect or answer in time, as nginx answers, 502 otherwise.
func gatewayError(err error) int {
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// clientFault is a request body the client framed wrongly (400), stalled
// (408) or broke off (statusClientGone, nothing to answer).
type clientFault struct {
	code int
	err  error
}

func (f *clientFault) Error() string { return f.err.Error() }
func (f *clientFault) Unwrap() error { return f.err }

// bodyFault judges a failed request body copy: nil when the failure was
// the backend's (it stopped reading), not the client's.
func bodyFault(err error) *clientFault {
	var se *srcError
	switch {
	case !errors.As(err, &se):
		return nil
	case errors.Is(err, errChunkedFraming), errors.Is(err, errChunkOverhead), errors.Is(err, errTrailerTooLong):
		return &clientFault{http.StatusBadRequest, err}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &clientFault{http.StatusRequestTimeout, err}
	}
	return &clientFault{statusClientGone, err}
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
// silent tells that the backend sent nothing at all (and may be asked
// again), and keep whether the client connection is still in step. A
// backend connection goes back to the pool only after a response framed
// whole with nothing after it: anything else closes it, so that no byte a
// backend sent out of turn reaches another request.
func (fc *fastConn) exchange(bc *backendConn) (status int, keep, silent bool, err error) {
	req := &fc.req
	bc.rd.watch(fc.raw, fc.f.i.to.BackendHeader)
	defer bc.rd.unwatch()
	fc.writeRequestHead(bc.bw)
	var bodyDone chan *clientFault // nil: the body went out whole
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
		// before reading it all does not leave both sides waiting. Its
		// reads are bounded by the body timeout.
		fc.cc.startBody()
		fc.deadline = time.Time{} // awaitRequest sets the idle deadline anew
		bodyDone = make(chan *clientFault, 1)
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
			switch fault := bodyFault(err); {
			case err == nil:
				bodyDone <- nil
			case fault != nil && fc.cc.mode.Load() != bodyStopped:
				bc.close() // no response can follow a broken request: stop waiting for one
				bodyDone <- fault
			default: // the backend stopped taking it, or bodySent stopped it
				bodyDone <- &clientFault{}
			}
		}()
	}
	// bodySent waits for the body goroutine and reports whether the whole
	// body went out, and the client's fault if the client broke it. If it
	// is still at it after wait, it is stopped, wherever it waits: on the
	// backend (closed) or on the client (whose connection then closes too,
	// being out of step).
	bodySent := func(wait time.Duration) (bool, *clientFault) {
		if bodyDone == nil {
			return true, nil
		}
		defer fc.cc.endBody()
		t := time.NewTimer(wait)
		defer t.Stop()
		var fault *clientFault
		select {
		case fault = <-bodyDone:
		case <-t.C:
			bc.close()
			fc.cc.stopBody()
			fault = <-bodyDone
		}
		if fault == nil {
			return true, nil
		}
		if fault.code == 0 {
			return false, nil
		}
		return false, fault
	}

	interim, err := fc.readResponseHead(bc)
	if err != nil {
		bc.close()
		inline := bodyDone == nil
		if _, fault := bodySent(0); fault != nil {
			return 0, false, false, fault
		}
		silent := interim == 0 && len(fc.rhead) == 0 && !errors.Is(err, errClientGone) && !errors.Is(err, errBackendTimeout)
		return 0, inline, silent, err
	}
	bc.rd.headDone()
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
	sent, _ := bodySent(bodyWriteWait)
	if err != nil || sendErr != nil || !sent || resp.close || unframed || bc.br.Buffered() > 0 {
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
