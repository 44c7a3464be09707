package ingress

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
)

func (i *Ingress) newBackend(addr string) *backend {
	b := &backend{addr: addr}
	target := &url.URL{Scheme: "http", Host: addr}
	b.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // backends route and build links by the public host
			// Replaces, not appends to, any client-sent X-Forwarded-*: the
			// edge is the first hop that can be trusted.
			pr.SetXForwarded()
		},
		Transport:  i.transport,
		BufferPool: &i.bufPool,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			i.logger.Debug("proxying to backend failed", "backend", addr, "host", r.Host, "error", err)
			w.WriteHeader(http.StatusBadGateway)
		},
		ErrorLog: i.errLog,
	}
	return b
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
