package ingress

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runenet/runenet/internal/testkit"
)

// A backend response the fast path refuses is refused the same way on the
// net/http path, where http.Transport on its own would fold, resolve or
// pool it: a 502 (or the response cut off, once its head is sent; a 200
// for bytes after a whole response), and the backend connection closed
// rather than pooled.
func TestBackendFramingViolationClosesTheBackendConnection(t *testing.T) {
	cases := []struct {
		name, answer string
		want         int // 0: cut off, before or after the head
	}{
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 2\r\n\r\nok", 502},
		{"Content-Length twice", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", 502},
		{"Transfer-Encoding beside Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", 502},
		{"bad chunk line", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n", 0},
		{"bytes past Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged", 200},
	}
	for _, mode := range servingPaths {
		t.Run(mode.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					hb := startHoldingBackend(t, tc.answer, "")
					ing := setupTo(t, hb.port, Options{DisableFastPath: mode.off})
					rc := dialRaw(t, ing.HTTPAddr())
					rc.send("GET / HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
					resp, err := http.ReadResponse(rc.br, nil)
					switch {
					case tc.want == 0:
					case err != nil:
						t.Errorf("reading the response: %v, want status %d", err, tc.want)
					case resp.StatusCode != tc.want:
						t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
					}
					hb.waitClosed(t, 10*time.Second, "a response with "+tc.name)
				})
			}
		})
	}
}

// The net/http path's check follows each response on a pooled backend
// connection to its end, by its request's method and its framing, so that
// a connection used for all kinds of responses stays in use.
func TestBackendCheckKeepsPooledConnectionsInStep(t *testing.T) {
	steps := []struct {
		method, path, response, body string
	}{
		{"HEAD", "/head", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", ""},
		{"GET", "/chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2;ext=1\r\nok\r\n3 \r\n!!!\r\n0\r\nX-T: v\r\n\r\n", "ok!!!"},
		{"GET", "/hints", "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhinted", "hinted"},
		{"GET", "/nocontent", "HTTP/1.1 204 No Content\r\n\r\n", ""},
		{"GET", "/notmodified", "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", ""},
		{"GET", "/plain", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok"},
	}
	for _, mode := range servingPaths {
		t.Run(mode.name, func(t *testing.T) {
			sb := startScriptedBackend(t, "127.0.0.1")
			for _, s := range steps {
				sb.script(s.path, script{response: s.response})
			}
			ing := setupTo(t, sb.port, Options{DisableFastPath: mode.off})
			rc := dialRaw(t, ing.HTTPAddr())
			for _, s := range steps {
				rc.send(s.method + " " + s.path + " HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
				resp, body := rc.read(s.method)
				for resp.StatusCode < 200 {
					resp, body = rc.read(s.method)
				}
				if resp.StatusCode >= 300 && resp.StatusCode != 304 || body != s.body {
					t.Fatalf("%s %s: %d %q, want %q", s.method, s.path, resp.StatusCode, body, s.body)
				}
			}
			if n := sb.accepted.Load(); n != 1 {
				t.Errorf("%d backend connections for %d requests in a row, want 1 (reused)", n, len(steps))
			}
		})
	}
}

// Bytes a backend sends on a connection idle in the net/http path's pool
// reach http.Transport at once, which closes the connection, though the
// check holds back a response head until it is whole: the next request
// goes to a new connection, not to one that would answer it with them.
func TestBackendCheckShowsBytesOnAnIdleConnection(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	junk, closed := make(chan struct{}), make(chan struct{}, 2)
	var accepted atomic.Int32
	testkit.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		first := accepted.Add(1) == 1
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				break
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			if first {
				<-junk
				io.WriteString(c, "junk") // not even a line
				first = false
			}
		}
		closed <- struct{}{}
	})
	ing := setupTo(t, ln.Addr().(*net.TCPAddr).Port, Options{DisableFastPath: true})
	rc := dialRaw(t, ing.HTTPAddr())
	rc.send("GET / HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("%d %q, want 200 \"ok\"", resp.StatusCode, body)
	}
	close(junk)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the idle backend connection that got bytes out of turn was kept 10s")
	}
	rc.send("GET / HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("next request: %d %q, want 200 \"ok\"", resp.StatusCode, body)
	}
	if n := accepted.Load(); n != 2 {
		t.Errorf("%d backend connections, want 2", n)
	}
}
