package ingress

import (
	"bufio"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Head writing for the fast path: what the backend and the client get.

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
	w.Write(fc.f.i.via.field)
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
