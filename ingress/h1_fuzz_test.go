package ingress

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// The fast path's parsers must never accept what net/http would reject or
// read differently: the fuzzers check every head they accept against
// net/http's own reading of it.

var requestSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
	"GET /p/a%2Fb;x=1?q=%20&r#f HTTP/1.1\r\nHost: a.example:8080\r\nUser-Agent: wrk\r\n\r\n",
	"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\n\r\nhello",
	"PUT /u HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\nTE: trailers\nTrailer: X-T\n\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Forwarded-For: 1.2.3.4\r\nKeep-Alive: 1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n Folded: x\r\n\r\n",
	"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: [::1]:80\r\nX: \x80\xff\r\n\r\n",
	// Smuggling shapes: the fast path must hand all of these over.
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
	"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-encoding: x\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n x\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 1\r\nContent_Length: 3\r\nVia: 1.1 x\r\n\r\n",
	"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
}

// FuzzRequestFraming checks the net/http path's gate: a head it lets
// through must be framed by net/http exactly as the gate follows it, or
// the gate would look for the next head in the wrong place.
func FuzzRequestFraming(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end := headEnd(b)
		if end < 0 {
			return
		}
		head := b[:end]
		fr, ok := requestFraming(head)
		if !ok {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			return // net/http refuses it and closes: nothing follows
		}
		chunked := len(r.TransferEncoding) == 1 && r.TransferEncoding[0] == "chunked"
		if chunked != fr.chunked || !chunked && r.ContentLength != fr.length {
			t.Fatalf("gate frames %q as chunked %v length %d, net/http as %v %d", head, fr.chunked, fr.length, r.TransferEncoding, r.ContentLength)
		}
	})
}

func FuzzRequestHead(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if end := headEnd(b); end >= 0 {
			checkRequestHead(t, b[:end])
		}
	})
}

// FuzzRequestHeadParts reaches the header fields more often than mutating
// whole heads does.
func FuzzRequestHeadParts(f *testing.F) {
	f.Add("GET", "/a?b=c", "a.example", "X-A: 1\r\nConnection: X-A, close\r\n")
	f.Add("POST", "/%41", "a:1", "Content-Length: 3\r\nTE: trailers\r\n")
	f.Add("PUT", "/", "a", "Transfer-Encoding: chunked\r\nTrailer: X\r\nForwarded: for=x\r\n")
	f.Fuzz(func(t *testing.T, method, target, host, fields string) {
		head := method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + fields + "\r\n"
		if end := headEnd([]byte(head)); end == len(head) {
			checkRequestHead(t, []byte(head))
		}
	})
}

// checkRequestHead checks that net/http reads a head the fast path accepts
// the same way.
func checkRequestHead(t *testing.T, head []byte) {
	var h requestHead
	if !h.parse(head) {
		return
	}
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		t.Fatalf("accepted %q, which net/http rejects: %v", head, err)
	}
	// What net/http's server checks beyond ReadRequest.
	if !httpguts.ValidHostHeader(r.Host) {
		t.Fatalf("accepted %q: Host %q", head, r.Host)
	}
	for k, vv := range r.Header {
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
				t.Fatalf("accepted %q: invalid field %q: %q", head, k, v)
			}
		}
	}
	if r.Header.Get("Expect") != "" || r.Header.Get("Upgrade") != "" || r.Method == "CONNECT" || r.ProtoMinor != 1 {
		t.Fatalf("accepted %q, which net/http must serve", head)
	}
	// ReverseProxy sends r.URL.RequestURI(), after cleaning a query
	// url.ParseQuery fails on: the fast path sends the target as it came.
	if _, err := url.ParseQuery(r.URL.RawQuery); err != nil || r.URL.RequestURI() != string(h.target) {
		t.Fatalf("accepted %q: target %q, ReverseProxy would send %q (query error %v)", head, h.target, r.URL.RequestURI(), err)
	}
	if r.Method != string(h.method) || r.Host != string(h.host) || r.Close != h.close {
		t.Fatalf("accepted %q: method %q host %q close %v, net/http read %q %q %v", head, h.method, h.host, h.close, r.Method, r.Host, r.Close)
	}
	switch {
	case h.chunked:
		if len(r.TransferEncoding) != 1 || r.TransferEncoding[0] != "chunked" {
			t.Fatalf("accepted %q as chunked, net/http read %v", head, r.TransferEncoding)
		}
	case r.ContentLength != max(h.contentLength, 0) || r.TransferEncoding != nil:
		t.Fatalf("accepted %q with length %d, net/http read %d %v", head, h.contentLength, r.ContentLength, r.TransferEncoding)
	}
	for _, fl := range h.fields {
		if fl.drop || fieldIs(fl.name, "Trailer") { // net/http moves Trailer into Request.Trailer
			continue
		}
		vv := r.Header[textproto.CanonicalMIMEHeaderKey(string(fl.name))]
		found := false
		for _, v := range vv {
			found = found || v == string(fl.value)
		}
		if !found {
			t.Fatalf("accepted %q: forwarding %s: %q, net/http read %q", head, fl.name, fl.value, vv)
		}
	}
}

func FuzzResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.0 404\r\nConnection: keep-alive\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\nTrailer: X\r\n\r\n",
		"HTTP/1.1 103 Early Hints\nLink: </a>\n\n",
		"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\nConnection: close, X\r\nX: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("v", 4087) + "\r\nContent-Length: 2\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end := headEnd(b)
		if end < 0 {
			return
		}
		head := b[:end]
		var h responseHead
		if !h.parse(head) {
			return
		}
		r, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), nil)
		if err != nil {
			t.Fatalf("accepted %q, which net/http rejects: %v", head, err)
		}
		if r.StatusCode != h.code {
			t.Fatalf("accepted %q: status %d, net/http read %d", head, h.code, r.StatusCode)
		}
		// A body ending with the connection closes it too (exchange's unframed).
		unframed := h.hasBody(nil) && !h.chunked && h.contentLength < 0
		if r.ProtoMinor == 1 && r.Close != (h.close || unframed) {
			t.Fatalf("accepted %q: close %v, net/http read %v", head, h.close, r.Close)
		}
		if h.hasBody(nil) && h.code != 204 {
			chunked := len(r.TransferEncoding) == 1 && r.TransferEncoding[0] == "chunked"
			if chunked != h.chunked || !chunked && r.ContentLength != h.contentLength {
				t.Fatalf("accepted %q: chunked %v length %d, net/http read %v %d", head, h.chunked, h.contentLength, r.TransferEncoding, r.ContentLength)
			}
		}
	})
}

// decodeChunked reads a chunked body and its trailer as net/http does.
func decodeChunked(b []byte) ([]byte, http.Header, error) {
	br := bufio.NewReader(bytes.NewReader(b))
	data, err := io.ReadAll(httputil.NewChunkedReader(br))
	if err != nil {
		return nil, nil, err
	}
	trailer, err := textproto.NewReader(br).ReadMIMEHeader()
	return data, http.Header(trailer), err
}

func FuzzChunked(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"5;ext=\"x\"\r\nhello\r\n6 \r\n world\r\n0\r\nX-T: v\r\nX-U:  w \r\n\r\n",
		"a\r\n0123456789\r\n0\n\n",
		"0\r\n\r\n",
		"fffffffffffffff\r\n",
		"zz\r\nabc\r\n0\r\n\r\n",
		"3\nabc\r\n0\r\n\r\n",
		"-3\r\nabc\r\n0\r\n\r\n",
		"3;" + strings.Repeat("e", 5000) + "\r\nabc\r\n0\r\n\r\n",
		strings.Repeat("1;"+strings.Repeat("e", 1000)+"\r\nx\r\n", 20) + "0\r\n\r\n",
		"3\r\nabc\r\n0\r\nHost: evil\r\nX-Forwarded-For: 6\r\nX-Sum: 1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	pool := &bufferPool{}
	f.Fuzz(func(t *testing.T, b []byte) {
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		src := bufio.NewReaderSize(bytes.NewReader(b), fastBufSize)
		if err := copyChunked(w, src, pool); err != nil {
			return
		}
		w.Flush()
		inData, inTrailer, err := decodeChunked(b)
		if err != nil && !strings.Contains(err.Error(), "too much non-data") {
			t.Fatalf("accepted %q, which net/http rejects: %v", b, err)
		}
		outData, outTrailer, err := decodeChunked(out.Bytes())
		if err != nil {
			t.Fatalf("re-framed %q as %q, which net/http rejects: %v", b, out.Bytes(), err)
		}
		for k := range inTrailer {
			if forbiddenTrailer([]byte(k)) { // not forwarded
				delete(inTrailer, k)
			}
		}
		if inData != nil && (!bytes.Equal(inData, outData) || !equalHeaders(inTrailer, outTrailer)) {
			t.Fatalf("re-framed %q as %q: data %q trailer %v, net/http read %q %v", b, out.Bytes(), outData, outTrailer, inData, inTrailer)
		}
	})
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\x00") != strings.Join(b[k], "\x00") {
			return false
		}
	}
	return true
}
