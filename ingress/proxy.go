package ingress

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
)

func (i *Ingress) newBackend(addr string) *backend {
	b := &backend{addr: addr}
	target := &url.URL{Scheme: "http", Host: addr}
	b.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out = traceMethod(pr.Out)
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // backends route and build links by the public host
			// Replaces, not appends to, any client-sent X-Forwarded-*: the
			// edge is the first hop that can be trusted.
			pr.SetXForwarded()
			pr.Out.Header.Add("Via", i.via.value)
			for k := range pr.Out.Header {
				if strings.IndexByte(k, '_') >= 0 && shadowsEdgeField([]byte(k)) {
					pr.Out.Header.Del(k)
				}
			}
		},
		Transport:  i.transport,
		BufferPool: &i.bufPool,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			i.logger.Debug("proxying to backend failed", "backend", addr, "host", r.Host, "error", err)
			w.WriteHeader(i.proxyError(w, r, err))
		},
		ErrorLog: i.errLog,
	}
	return b
}

// proxyError is the answer for a request ReverseProxy could not complete,
// as the fast path answers it: the client's fault when the gate cut its
// body off (400 for bad framing, 408 for a stall, which close the
// connection), statusClientGone (recorded, not sent) when the client went
// away, else 504 or 502 by gatewayError.
func (i *Ingress) proxyError(w http.ResponseWriter, r *http.Request, err error) int {
	if g := gateOf(r.Context()); g != nil {
		if ferr := g.bodyFailure(); ferr != nil {
			w.Header().Set("Connection", "close")
			if errors.Is(ferr, errBodyTimeout) {
				return http.StatusRequestTimeout
			}
			if errors.Is(ferr, errChunkedFraming) || errors.Is(ferr, errChunkOverhead) || errors.Is(ferr, errTrailerTooLong) {
				return http.StatusBadRequest
			}
		}
	}
	if r.Context().Err() != nil {
		return statusClientGone
	}
	return gatewayError(err)
}

// statusWriter records the response status for the request metric. Unwrap
// lets http.ResponseController (used by ReverseProxy to flush) reach the
// underlying writer.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 && code >= 200 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Hijack is how ReverseProxy completes a protocol switch (WebSocket); the
// 101 it then writes goes straight to the connection, so record it here.
func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err == nil {
		s.code = http.StatusSwitchingProtocols
		if g, ok := c.(*gate); ok {
			g.hijacked()
		}
	}
	return c, rw, err
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}

// bufferPool reuses copy buffers across requests, ReverseProxy's and the
// fast path's.
type bufferPool struct{ p sync.Pool }

const copyBufferSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, copyBufferSize)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }
