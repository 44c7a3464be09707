package ingress

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runenet/runenet/internal/testkit"
)

// The differential harness: request-smuggling and framing cases from public
// research (PortSwigger's "HTTP Desync Attacks" and "HTTP/1.1 must die"
// CL.TE, TE.CL and TE.TE obfuscations; RFC 9112 6.3 and 7.1; the chunk
// edge cases behind CVE-2025-22871 and CVE-2023-39326; nginx's refusals),
// each sent through the fast path and through the net/http path
// (`fastpath off`) to a raw backend that records the exact bytes it gets.
// For every case: the client sees exactly the statuses listed (a 400 where
// nginx refuses), the backend gets exactly the listed requests, each whole
// and well framed, every response reaches the client whose request it
// answers, and the connection is closed when it must be.

// recordingBackend answers each request with the raw response scripted for
// its path, "resp:PATH" by default, and records every whole request it got.
type recordingBackend struct {
	port    int
	mu      sync.Mutex
	scripts map[string]string // path → raw response; %[1]s is the path, %[2]d the length of "resp:PATH"
	got     []recorded
}

type recorded struct {
	path string
	raw  []byte // head and body as received
}

func startRecordingBackend(t *testing.T) *recordingBackend {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rb := &recordingBackend{port: ln.Addr().(*net.TCPAddr).Port, scripts: map[string]string{}}
	testkit.Serve(t, ln, rb.serve)
	return rb
}

func (rb *recordingBackend) serve(c net.Conn) {
	defer c.Close()
	var raw bytes.Buffer
	br := bufio.NewReader(io.TeeReader(c, &raw))
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return // a cut-off body is no request
		}
		// What the tee took beyond this request is the next one's start.
		n := raw.Len() - br.Buffered()
		rec := recorded{path: req.URL.Path, raw: append([]byte(nil), raw.Bytes()[:n]...)}
		rest := append([]byte(nil), raw.Bytes()[n:]...)
		raw.Reset()
		raw.Write(rest)
		rb.mu.Lock()
		rb.got = append(rb.got, rec)
		resp, ok := rb.scripts[req.URL.Path]
		rb.mu.Unlock()
		if !ok {
			resp = "HTTP/1.1 200 OK\r\nContent-Length: %[2]d\r\n\r\nresp:%[1]s"
		}
		if strings.Contains(resp, "%[") {
			resp = fmt.Sprintf(resp, req.URL.Path, len("resp:"+req.URL.Path))
		}
		io.WriteString(c, resp)
	}
}

// requests returns what the backend got for paths under prefix.
func (rb *recordingBackend) requests(prefix string) []recorded {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	var out []recorded
	for _, r := range rb.got {
		if strings.HasPrefix(r.path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

type smuggleCase struct {
	name string
	// request is what the client sends: %[1]s is the case's path prefix
	// ("/c12"), %[2]s the host.
	request string
	method  string            // of the last request, for reading its response; default GET
	script  map[string]string // path suffix → raw backend response (%[1]s: path)
	want    []int             // final statuses the client gets, in order
	bodies  []string          // the response bodies, by default "resp:PATH" for 200s of backend paths
	backend []string          // path suffixes the backend gets, in order, each once
	closed  bool              // the ingress closes the connection after the last response
	absent  []string          // strings no request the backend gets may contain
}

const smuggled = "GET %[1]s/smuggled HTTP/1.1\r\nHost: %[2]s\r\n\r\n"

func post(headers, body string) string {
	return "POST %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n" + headers + "\r\n" + body
}

// longHeaderResponse has a header line of lineLen bytes before its CRLF.
func longHeaderResponse(lineLen int) string {
	prefix := "X-Long: "
	return "HTTP/1.1 200 OK\r\n" + prefix + strings.Repeat("v", lineLen-len(prefix)) + "\r\nContent-Length: 4\r\n\r\nlong"
}

var smuggleCases = []smuggleCase{
	// CL.TE and TE.CL: both framings in one request (RFC 9112 6.3 item 3).
	{name: "CL.TE classic", request: post("Content-Length: 13\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\nSMUGGLED"), want: []int{400}, closed: true},
	{name: "TE.CL classic", request: post("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", "8\r\nSMUGGLED\r\n0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "TE before CL", request: post("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", "5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "CL.TE with smuggled GET", request: post("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n") + smuggled, want: []int{400}, closed: true},
	{name: "TE and CL 0", request: post("Transfer-Encoding: chunked\r\nContent-Length: 0\r\n", "0\r\n\r\n") + smuggled, want: []int{400}, closed: true},
	{name: "TE on HTTP/1.0", request: "POST %[1]s/a HTTP/1.0\r\nHost: %[2]s\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, want: []int{400}, closed: true},
	{name: "TE and CL on HTTP/1.0", request: "POST %[1]s/a HTTP/1.0\r\nHost: %[2]s\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", want: []int{400}, closed: true},
	// TE.TE: Transfer-Encoding obfuscations one parser may ignore.
	{name: "TE xchunked", request: post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "TE space before colon", request: post("Transfer-Encoding : chunked\r\n", "0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "TE twice", request: post("Transfer-Encoding: chunked\r\nTransfer-encoding: x\r\n", "0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "TE chunked twice", request: post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "TE chunked, identity", request: post("Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "TE identity, chunked", request: post("Transfer-Encoding: identity, chunked\r\n", "0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "TE obs-fold", request: post("Transfer-Encoding: chunked\r\n x\r\n", "0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "TE folded onto another line", request: post("X-A: 1\r\n Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", "abc"), want: []int{400}, closed: true},
	{name: "TE quoted", request: post("Transfer-Encoding: \"chunked\"\r\n", "0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "TE chunk", request: post("Transfer-Encoding: chunk\r\n", "0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "TE vertical tab", request: post("Transfer-Encoding: \x0bchunked\r\n", "0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "TE NUL", request: post("Transfer-Encoding: chunked\x00\r\n", "0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "TE bare LF head with CL", request: "POST %[1]s/a HTTP/1.1\nHost: %[2]s\nContent-Length: 3\nTransfer-Encoding: chunked\n\n0\r\n\r\n", want: []int{400}, closed: true},
	{name: "TE tab OWS accepted", request: post("Transfer-Encoding:\tchunked\r\n", "3\r\nabc\r\n0\r\n\r\n"), want: []int{200}, backend: []string{"/a"}},
	{name: "TE upper case accepted", request: post("Transfer-Encoding: CHUNKED\r\n", "3\r\nabc\r\n0\r\n\r\n"), want: []int{200}, backend: []string{"/a"}},
	{name: "TE underscore variant dropped", request: post("Content-Length: 3\r\nTransfer_Encoding: chunked\r\n", "abc"), want: []int{200}, backend: []string{"/a"}, absent: []string{"Transfer_Encoding"}},
	// Content-Length tricks.
	{name: "CL twice identical", request: post("Content-Length: 3\r\nContent-Length: 3\r\n", "abc"), want: []int{400}, closed: true},
	{name: "CL twice different", request: post("Content-Length: 3\r\nContent-Length: 4\r\n", "abcd"), want: []int{400}, closed: true},
	{name: "CL plus sign", request: post("Content-Length: +3\r\n", "abc"), want: []int{400}, closed: true},
	{name: "CL negative", request: post("Content-Length: -1\r\n", "abc"), want: []int{400}, closed: true},
	{name: "CL list", request: post("Content-Length: 3, 3\r\n", "abc"), want: []int{400}, closed: true},
	{name: "CL hex", request: post("Content-Length: 0x3\r\n", "abc"), want: []int{400}, closed: true},
	{name: "CL overflow", request: post("Content-Length: 99999999999999999999\r\n", "abc"), want: []int{400}, closed: true},
	{name: "CL empty", request: post("Content-Length: \r\n", "abc"), want: []int{400}, closed: true},
	{name: "CL tab in name", request: post("Content-Length\t: 3\r\n", "abc"), want: []int{400}, closed: true},
	{name: "CL obs-fold", request: post("Content-Length: 3\r\n 4\r\n", "abcd"), want: []int{400}, closed: true},
	{name: "CL with OWS accepted", request: post("Content-Length:  3 \r\n", "abc"), want: []int{200}, backend: []string{"/a"}},
	{name: "CL underscore variant dropped", request: post("Content-Length: 3\r\nContent_Length: 0\r\n", "abc"), want: []int{200}, backend: []string{"/a"}, absent: []string{"Content_Length"}},
	// Chunk edge cases.
	{name: "chunk size not hex", request: post("Transfer-Encoding: chunked\r\n", "zz\r\nabc\r\n0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "chunk size overflow", request: post("Transfer-Encoding: chunked\r\n", "fffffffffffffffff\r\nabc\r\n0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "chunk size many zeros", request: post("Transfer-Encoding: chunked\r\n", "00000000000000000003\r\nabc\r\n0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "chunk size negative", request: post("Transfer-Encoding: chunked\r\n", "-3\r\nabc\r\n0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "chunk size 0x prefix", request: post("Transfer-Encoding: chunked\r\n", "0x3\r\nabc\r\n0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "chunk size leading space", request: post("Transfer-Encoding: chunked\r\n", " 3\r\nabc\r\n0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "chunk line bare LF", request: post("Transfer-Encoding: chunked\r\n", "3\nabc\r\n0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "chunk data bare LF", request: post("Transfer-Encoding: chunked\r\n", "3\r\nabc\n0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "chunk data too long", request: post("Transfer-Encoding: chunked\r\n", "3\r\nabcdef\r\n0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "chunk line CR inside", request: post("Transfer-Encoding: chunked\r\n", "3\r\r\nabc\r\n0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "chunk line empty", request: post("Transfer-Encoding: chunked\r\n", "\r\nabc\r\n0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "chunk extension oversized", request: post("Transfer-Encoding: chunked\r\n", "3;"+strings.Repeat("e", 5000)+"\r\nabc\r\n0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "chunk extension overhead", request: post("Transfer-Encoding: chunked\r\n", strings.Repeat("1;"+strings.Repeat("e", 1000)+"\r\nx\r\n", 20)+"0\r\n\r\n"), want: []int{400}, closed: true},
	{name: "chunk extension accepted", request: post("Transfer-Encoding: chunked\r\n", "3;name=\"v\"\r\nabc\r\n0\r\n\r\n"), want: []int{200}, backend: []string{"/a"}},
	{name: "chunk size trailing blank accepted", request: post("Transfer-Encoding: chunked\r\n", "3 \r\nabc\r\n0\r\n\r\n"), want: []int{200}, backend: []string{"/a"}},
	{name: "trailer bad line", request: post("Transfer-Encoding: chunked\r\n", "3\r\nabc\r\n0\r\nno colon\r\n\r\n"), want: []int{400}, closed: true},
	{name: "trailer forbidden fields dropped", request: post("Transfer-Encoding: chunked\r\nTrailer: X-Sum\r\n", "3\r\nabc\r\n0\r\nX-Sum: 1\r\nHost: evil-host\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Client: evil-xf\r\n\r\n"),
		want: []int{200}, backend: []string{"/a"}, absent: []string{"evil-host", "6.6.6.6", "evil-xf"}},
	// Header-name and request-line tricks.
	{name: "Host twice", request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\nHost: other.example\r\n\r\n", want: []int{400}, closed: true},
	{name: "Host missing", request: "GET %[1]s/a HTTP/1.1\r\nX-A: 1\r\n\r\n", want: []int{400}, closed: true},
	{name: "request line double space", request: "GET  %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\n", want: []int{400}, closed: true},
	{name: "request line trailing space", request: "GET %[1]s/a HTTP/1.1 \r\nHost: %[2]s\r\n\r\n", want: []int{400}, closed: true},
	{name: "field without colon", request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\nX-Bad\r\n\r\n", want: []int{400}, closed: true},
	{name: "field value NUL", request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\nX-A: a\x00b\r\n\r\n", want: []int{400}, closed: true},
	{name: "forwarding underscore variants dropped", request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\nX_Forwarded_For: 6.6.6.6\r\nX_Forwarded_Host: evil-host\r\nx_forwarded_proto: evil-proto\r\n\r\n",
		want: []int{200}, backend: []string{"/a"}, absent: []string{"6.6.6.6", "evil-host", "evil-proto"}},
	{name: "forwarding headers replaced", request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil-host\r\nForwarded: for=evil-fwd\r\n\r\n",
		want: []int{200}, backend: []string{"/a"}, absent: []string{"6.6.6.6", "evil-host", "evil-fwd"}},
	{name: "CONNECT refused", request: "CONNECT %[2]s:443 HTTP/1.1\r\nHost: %[2]s:443\r\n\r\n", want: []int{405}, closed: true},
	{name: "hop-by-hop naming TE", request: post("Connection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n", "3\r\nabc\r\n0\r\n\r\n"), want: []int{200}, backend: []string{"/a"}},
	// Pipelining.
	{name: "pipelined GETs", request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\nGET %[1]s/b HTTP/1.1\r\nHost: %[2]s\r\n\r\n", want: []int{200, 200}, backend: []string{"/a", "/b"}},
	{name: "pipelined GET, POST, GET", request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\nPOST %[1]s/b HTTP/1.1\r\nHost: %[2]s\r\nContent-Length: 3\r\n\r\nabcGET %[1]s/c HTTP/1.1\r\nHost: %[2]s\r\n\r\n",
		want: []int{200, 200, 200}, backend: []string{"/a", "/b", "/c"}},
	{name: "pipelined GET then CL.TE", request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\n" + post("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n") + smuggled,
		want: []int{200, 400}, backend: []string{"/a"}, closed: true},
	{name: "pipelined bad chunk then GET", request: post("Transfer-Encoding: chunked\r\n", "zz\r\n\r\n") + smuggled, want: []int{400}, closed: true},
	{name: "HTTP/1.0 keep-alive pipelined", request: "GET %[1]s/a HTTP/1.0\r\nHost: %[2]s\r\nConnection: keep-alive\r\n\r\nGET %[1]s/b HTTP/1.1\r\nHost: %[2]s\r\n\r\n", want: []int{200, 200}, backend: []string{"/a", "/b"}},
	// Early hints and other 1xx.
	{name: "early hints", script: map[string]string{"/a": "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nhinted!"},
		request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\n", want: []int{200}, bodies: []string{"hinted!"}, backend: []string{"/a"}},
	{name: "unasked 101", script: map[string]string{"/a": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n"},
		request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\n", want: []int{502}, backend: []string{"/a"}},
	// HEAD, 204, 304 and other backend framing violations: the bytes out of
	// turn must not reach the next request, on this connection or another.
	{name: "body on HEAD", script: map[string]string{"/a": "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"},
		request: "HEAD %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\n", method: "HEAD", want: []int{200}, bodies: []string{""}, backend: []string{"/a"}},
	{name: "body on 204", script: map[string]string{"/a": "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"},
		request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\n", want: []int{204}, bodies: []string{""}, backend: []string{"/a"}},
	{name: "body on 304", script: map[string]string{"/a": "HTTP/1.1 304 Not Modified\r\nContent-Length: 6\r\n\r\nforged"},
		request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\n", want: []int{304}, bodies: []string{""}, backend: []string{"/a"}},
	{name: "bytes past Content-Length", script: map[string]string{"/a": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"},
		request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\n", want: []int{200}, bodies: []string{"ok"}, backend: []string{"/a"}},
	{name: "bytes past chunked end", script: map[string]string{"/a": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"},
		request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\n", want: []int{200}, bodies: []string{"ok"}, backend: []string{"/a"}},
	// Ambiguous response framing (RFC 9112 6.3) is refused, as nginx
	// refuses it, where http.Transport on its own would resolve it.
	{name: "response TE and CL", script: map[string]string{"/a": "HTTP/1.1 200 OK\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
		request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\n", want: []int{502}, backend: []string{"/a"}},
	{name: "response CL twice identical", script: map[string]string{"/a": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"},
		request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\n", want: []int{502}, backend: []string{"/a"}},
	{name: "response CL twice different", script: map[string]string{"/a": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"},
		request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\n", want: []int{502}, backend: []string{"/a"}},
	{name: "response CL not a number", script: map[string]string{"/a": "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nok"},
		request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\n", want: []int{502}, backend: []string{"/a"}},
	{name: "response TE gzip, chunked", script: map[string]string{"/a": "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
		request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\n", want: []int{502}, backend: []string{"/a"}},
	{name: "response bad chunk", script: map[string]string{"/a": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n"},
		request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\n", want: []int{200}, bodies: []string{"<cut>"}, backend: []string{"/a"}, closed: true},
	// RFC 9112 5.2 lets a proxy either refuse obs-fold in a response or
	// replace it with a space (http.Transport does): both paths refuse it.
	{name: "response obs-fold", script: map[string]string{"/a": "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: %[2]d\r\n\r\nresp:%[1]s"},
		request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\n", want: []int{502}, backend: []string{"/a"}},
	// Response header lines around the 4 KiB read buffer.
	{name: "response header line 4095", script: map[string]string{"/a": longHeaderResponse(4095)},
		request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\n", want: []int{200}, bodies: []string{"long"}, backend: []string{"/a"}},
	{name: "response header line 4096", script: map[string]string{"/a": longHeaderResponse(4096)},
		request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\n", want: []int{200}, bodies: []string{"long"}, backend: []string{"/a"}},
	{name: "response header line 8191", script: map[string]string{"/a": longHeaderResponse(8191)},
		request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\n", want: []int{200}, bodies: []string{"long"}, backend: []string{"/a"}},
	{name: "response header line 8192", script: map[string]string{"/a": longHeaderResponse(8192)},
		request: "GET %[1]s/a HTTP/1.1\r\nHost: %[2]s\r\n\r\n", want: []int{200}, bodies: []string{"long"}, backend: []string{"/a"}},
}

func TestSmugglingDifferential(t *testing.T) {
	if len(smuggleCases) < 60 {
		t.Fatalf("%d cases, want at least 60", len(smuggleCases))
	}
	for _, mode := range []struct {
		name string
		off  bool
	}{{"fast path", false}, {"net/http path", true}} {
		t.Run(mode.name, func(t *testing.T) {
			n := newNode(t)
			rb := startRecordingBackend(t)
			ing := startIngressWith(t, n, Options{DisableFastPath: mode.off})
			n.cast(t, "fast", rb.port, fastHost, "")
			n.addInstance(t, "fast", "fast-1", "127.0.0.1")
			waitRoute(t, ing, fastHost, 1)
			for k, tc := range smuggleCases {
				t.Run(tc.name, func(t *testing.T) {
					runSmuggleCase(t, ing, rb, fmt.Sprintf("/c%d", k), tc)
				})
			}
		})
	}
}

func runSmuggleCase(t *testing.T, ing *Ingress, rb *recordingBackend, prefix string, tc smuggleCase) {
	rb.mu.Lock()
	for suffix, resp := range tc.script {
		rb.scripts[prefix+suffix] = resp
	}
	rb.mu.Unlock()
	rc := dialRaw(t, ing.HTTPAddr())
	rc.send(fmt.Sprintf(tc.request, prefix, fastHost))
	for k, code := range tc.want {
		method := "GET"
		if k == len(tc.want)-1 && tc.method != "" {
			method = tc.method
		}
		resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
		for err == nil && resp.StatusCode < 200 { // interim responses (103) come first
			resp, err = http.ReadResponse(rc.br, &http.Request{Method: method})
		}
		if err != nil && k < len(tc.bodies) && tc.bodies[k] == "<cut>" {
			continue // cut off before the head as well as after it
		}
		if err != nil {
			t.Fatalf("response %d: %v, want %d", k, err, code)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			body = []byte("<cut>")
		}
		if resp.StatusCode != code {
			t.Fatalf("response %d: %d %q, want %d", k, resp.StatusCode, body, code)
		}
		switch {
		case k < len(tc.bodies):
			if string(body) != tc.bodies[k] && !(tc.bodies[k] == "" && code >= 400) {
				t.Errorf("response %d body %q, want %q", k, body, tc.bodies[k])
			}
		case code == 200 && k < len(tc.backend):
			if w := "resp:" + prefix + tc.backend[k]; string(body) != w {
				t.Errorf("response %d body %q, want %q (another request's response?)", k, body, w)
			}
		}
	}
	if tc.closed {
		if !rc.closed() {
			t.Error("connection left open, want it closed")
		}
	} else {
		// Still in step: a next request on the same connection gets its own response.
		rc.send(fmt.Sprintf("GET %s/next HTTP/1.1\r\nHost: %s\r\n\r\n", prefix, fastHost))
		if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "resp:"+prefix+"/next" {
			t.Errorf("next request on the connection: %d %q, want 200 %q", resp.StatusCode, body, "resp:"+prefix+"/next")
		}
	}
	// Another client gets its own response, whatever the backend left behind.
	other := dialRaw(t, ing.HTTPAddr())
	other.send(fmt.Sprintf("GET %s/other HTTP/1.1\r\nHost: %s\r\n\r\n", prefix, fastHost))
	if resp, body := other.read("GET"); resp.StatusCode != 200 || body != "resp:"+prefix+"/other" {
		t.Errorf("another client: %d %q, want 200 %q", resp.StatusCode, body, "resp:"+prefix+"/other")
	}
	// The backend has had everything of this case once it has /other.
	var got []recorded
	waitFor(t, 5*time.Second, "the backend to get "+prefix+"/other", func() bool {
		got = rb.requests(prefix)
		return len(got) > 0 && got[len(got)-1].path == prefix+"/other"
	})
	var paths []string
	for _, r := range got {
		if p := strings.TrimPrefix(r.path, prefix); p != "/next" && p != "/other" {
			paths = append(paths, p)
		}
		if _, ok := requestFraming(headOf(r.raw)); !ok {
			t.Errorf("the backend got an ill-framed request: %q", r.raw)
		}
		if c := bytes.Count(r.raw, []byte(ing.via.value)); c != 1 {
			t.Errorf("the backend got %d Via entries of this ingress, want 1: %q", c, r.raw)
		}
		for _, s := range tc.absent {
			if bytes.Contains(r.raw, []byte(s)) {
				t.Errorf("the backend got %q in %q", s, r.raw)
			}
		}
	}
	if strings.Join(paths, " ") != strings.Join(tc.backend, " ") {
		t.Errorf("the backend got %q, want %q", paths, tc.backend)
	}
}

func headOf(raw []byte) []byte {
	if end := headEnd(raw); end >= 0 {
		return raw[:end]
	}
	return raw
}
