package ingress

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/runenet/runenet/internal/testkit"
)

// scriptedBackend answers each request with the raw response scripted for
// its path (default: 200 "ok"), recording what it received, so tests control
// every byte of the framing the fast path has to get right.
type scriptedBackend struct {
	port     int
	accepted atomic.Int32
	closed   atomic.Int32 // connections the backend has closed
	mu       sync.Mutex
	scripts  map[string]script
	got      map[string]*http.Request // by path; Body replaced by bodies[path]
	bodies   map[string]string
}

type script struct {
	response   string
	closeAfter bool // close the connection after answering, without saying so
	// hold, if set, is called between writing response[:split] and the rest.
	split int
	hold  func()
}

func startScriptedBackend(t *testing.T, ip string) *scriptedBackend {
	t.Helper()
	ln, err := net.Listen("tcp4", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	sb := &scriptedBackend{port: ln.Addr().(*net.TCPAddr).Port, scripts: map[string]script{}, got: map[string]*http.Request{}, bodies: map[string]string{}}
	testkit.Serve(t, ln, func(c net.Conn) {
		sb.accepted.Add(1)
		sb.serve(c)
		sb.closed.Add(1)
	})
	return sb
}

// scriptKey keys scripts and records by a path's first segment, so a case
// can append to its path.
func scriptKey(path string) string {
	first, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return "/" + first
}

func (sb *scriptedBackend) script(path string, s script) {
	sb.mu.Lock()
	sb.scripts[path] = s
	sb.mu.Unlock()
}

func (sb *scriptedBackend) received(path string) (*http.Request, string) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.got[path], sb.bodies[path]
}

func (sb *scriptedBackend) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		sb.mu.Lock()
		key := scriptKey(req.URL.Path)
		sb.got[key], sb.bodies[key] = req, string(body)
		s, ok := sb.scripts[key]
		sb.mu.Unlock()
		if !ok {
			s.response = "HTTP/1.1 200 Fast\r\nContent-Length: 2\r\n\r\nok"
		}
		if s.hold != nil {
			io.WriteString(c, s.response[:s.split])
			s.hold()
			io.WriteString(c, s.response[s.split:])
		} else {
			io.WriteString(c, s.response)
		}
		if s.closeAfter {
			return
		}
	}
}

// rawClient speaks HTTP/1.1 to the ingress byte by byte.
type rawClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr net.Addr) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawClient) send(raw string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, raw); err != nil {
		rc.t.Fatalf("writing request: %v", err)
	}
}

// read reads one response (interim ones too) to a request with method.
func (rc *rawClient) read(method string) (*http.Response, string) {
	rc.t.Helper()
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatalf("reading response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatalf("reading response body: %v", err)
	}
	return resp, string(b)
}

// closed reports whether the server closed the connection (within a few
// seconds).
func (rc *rawClient) closed() bool {
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := rc.br.ReadByte()
	return err == io.EOF || err != nil && strings.Contains(err.Error(), "reset")
}

const fastHost = "fast.example.test"

// fastSetup starts an ingress routing fastHost to a scripted backend.
func fastSetup(t *testing.T) (*Ingress, *scriptedBackend) {
	t.Helper()
	sb := startScriptedBackend(t, "127.0.0.1")
	return setupTo(t, sb.port, Options{}), sb
}

// setupTo starts an ingress with opts routing fastHost to 127.0.0.1:port.
func setupTo(t *testing.T, port int, opts Options) *Ingress {
	t.Helper()
	n := newNode(t)
	ing := startIngressWith(t, n, opts)
	n.cast(t, "fast", port, fastHost, "")
	n.addInstance(t, "fast", "fast-1", "127.0.0.1")
	waitRoute(t, ing, fastHost, 1)
	return ing
}

func TestFastPathFraming(t *testing.T) {
	ing, sb := fastSetup(t)
	bigBody := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB: goes through the large-copy path
	cases := []struct {
		name       string
		script     script
		request    string // %[1]s is the path, %[2]s the host
		method     string
		interim    []int // 1xx statuses the client must see first
		status     int
		body       string
		header     map[string]string // "" means absent
		trailer    map[string]string
		seen       func(t *testing.T, r *http.Request, body string)
		closes     bool // the ingress must close the connection afterwards
		noFollowUp bool
		handedOver bool // served by net/http rather than the fast path
	}{{
		name:   "content-length response",
		script: script{response: "HTTP/1.1 200 Fast\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello"},
		status: 200, body: "hello", header: map[string]string{"Content-Length": "5", "X-A": "1"},
	}, {
		name:   "large content-length response",
		script: script{response: fmt.Sprintf("HTTP/1.1 200 Fast\r\nContent-Length: %d\r\n\r\n%s", len(bigBody), bigBody)},
		status: 200, body: bigBody,
	}, {
		name:   "chunked response with extensions and trailer",
		script: script{response: "HTTP/1.1 200 Fast\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: v\r\n\r\n"},
		status: 200, body: "hello world", trailer: map[string]string{"X-T": "v"},
	}, {
		name:   "large chunked response",
		script: script{response: fmt.Sprintf("HTTP/1.1 200 Fast\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(bigBody), bigBody)},
		status: 200, body: bigBody,
	}, {
		name:   "chunked beside content-length is refused",
		script: script{response: "HTTP/1.1 200 Fast\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		status: 502,
	}, {
		name:   "close-delimited response reaches the client chunked",
		script: script{response: "HTTP/1.1 200 Fast\r\nContent-Type: text/plain\r\n\r\nuntil the end", closeAfter: true},
		status: 200, body: "until the end", header: map[string]string{"Content-Type": "text/plain"},
	}, {
		name:   "HTTP/1.0 backend",
		script: script{response: "HTTP/1.0 200 Fast\r\nContent-Length: 2\r\n\r\nok", closeAfter: true},
		status: 200, body: "ok",
	}, {
		name:   "status line without reason phrase",
		script: script{response: "HTTP/1.1 299\r\nContent-Length: 2\r\n\r\nok"},
		status: 299, body: "ok",
	}, {
		name:    "HEAD",
		script:  script{response: "HTTP/1.1 200 Fast\r\nContent-Length: 100\r\n\r\n"},
		request: "HEAD /%[1]s HTTP/1.1\r\nHost: %[2]s\r\n\r\n", method: "HEAD",
		status: 200, header: map[string]string{"Content-Length": "100"},
	}, {
		name:   "204",
		script: script{response: "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"},
		status: 204, header: map[string]string{"X-A": "1"},
	}, {
		name:   "304",
		script: script{response: "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 10\r\n\r\n"},
		status: 304, header: map[string]string{"Etag": `"v1"`},
	}, {
		name:    "request body with content-length",
		request: "POST /%[1]s HTTP/1.1\r\nHost: %[2]s\r\nContent-Length: 11\r\n\r\nhello world", method: "POST",
		status: 200, body: "ok",
		seen: func(t *testing.T, r *http.Request, body string) {
			if body != "hello world" || r.ContentLength != 11 {
				t.Errorf("backend got body %q (length %d), want \"hello world\" (11)", body, r.ContentLength)
			}
		},
	}, {
		name:    "chunked request body with trailer",
		request: "POST /%[1]s HTTP/1.1\r\nHost: %[2]s\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n", method: "POST",
		status: 200, body: "ok",
		seen: func(t *testing.T, r *http.Request, body string) {
			if body != "hello world" || r.Trailer.Get("X-Sum") != "42" || len(r.TransferEncoding) != 1 {
				t.Errorf("backend got body %q, trailer %v, transfer encoding %v; want \"hello world\", X-Sum 42, chunked", body, r.Trailer, r.TransferEncoding)
			}
		},
	}, {
		name: "forwarded and hop-by-hop headers",
		request: "GET /%[1]s HTTP/1.1\r\nHost: %[2]s:80\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 300\r\n" +
			"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nForwarded: for=6.6.6.6\r\n" +
			"Proxy-Authorization: Basic eA==\r\nTE: trailers, deflate\r\nx-keep: yes\r\nUser-Agent: raw\r\n\r\n",
		script: script{response: "HTTP/1.1 200 Fast\r\nConnection: X-Internal\r\nX-Internal: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: x\r\nContent-Length: 2\r\n\r\nok"},
		status: 200, body: "ok",
		header: map[string]string{"X-Internal": "", "Keep-Alive": "", "Connection": "", "Proxy-Authenticate": ""},
		seen: func(t *testing.T, r *http.Request, _ string) {
			want := map[string]string{
				"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": fastHost + ":80", "X-Forwarded-Proto": "http",
				"Te": "trailers", "X-Keep": "yes", "User-Agent": "raw",
				"X-Secret": "", "Keep-Alive": "", "Forwarded": "", "Proxy-Authorization": "", "Connection": "",
			}
			for k, v := range want {
				if got := strings.Join(r.Header.Values(k), ","); got != v {
					t.Errorf("backend saw %s: %q, want %q", k, got, v)
				}
			}
			if r.Host != fastHost+":80" {
				t.Errorf("backend saw Host %q, want the client's", r.Host)
			}
		},
	}, {
		name:    "target passed on byte for byte",
		request: "GET /%[1]s/a%%2Fb;p=1/(x)?q=%%20x&y=[1]&z#f HTTP/1.1\r\nHost: %[2]s\r\n\r\n",
		status:  200, body: "ok",
		seen: func(t *testing.T, r *http.Request, _ string) {
			if want := "/a%2Fb;p=1/(x)?q=%20x&y=[1]&z#f"; !strings.HasSuffix(r.RequestURI, want) {
				t.Errorf("backend saw %q, want it to end in %q", r.RequestURI, want)
			}
		},
	}, {
		name:    "early hints passed on, unasked 100 Continue not",
		script:  script{response: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 Fast\r\nContent-Length: 2\r\n\r\nok"},
		interim: []int{103},
		status:  200, body: "ok",
	}, {
		name:   "malformed response head is a 502",
		script: script{response: "HTTP/1.1 200 Fast\r\nBad Header\r\n\r\n"},
		status: 502,
	}, {
		name:   "unasked protocol switch is a 502",
		script: script{response: "HTTP/1.1 101 Switching Protocols\r\n\r\n"},
		status: 502,
	}, {
		name:   "conflicting content-lengths are a 502",
		script: script{response: "HTTP/1.1 200 Fast\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"},
		status: 502,
	}, {
		name:    "client asks to close",
		request: "GET /%[1]s HTTP/1.1\r\nHost: %[2]s\r\nConnection: close\r\n\r\n",
		status:  200, body: "ok", closes: true,
	}, {
		name:    "expect 100-continue goes through net/http",
		request: "PUT /%[1]s HTTP/1.1\r\nHost: %[2]s\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nbody", method: "PUT",
		interim: []int{100}, status: 200, body: "ok", handedOver: true,
		seen: func(t *testing.T, r *http.Request, body string) {
			if body != "body" {
				t.Errorf("backend got body %q, want \"body\"", body)
			}
		},
	}, {
		name:    "HTTP/1.0 client goes through net/http",
		request: "GET /%[1]s HTTP/1.0\r\nHost: %[2]s\r\n\r\n",
		status:  200, body: "ok", noFollowUp: true, handedOver: true,
	}}
	for k, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := fmt.Sprintf("case%d", k)
			if tc.script.response != "" {
				sb.script("/"+path, tc.script)
			}
			if tc.request == "" {
				tc.request = "GET /%[1]s HTTP/1.1\r\nHost: %[2]s\r\n\r\n"
			}
			if tc.method == "" {
				tc.method = "GET"
			}
			before := testutil.ToFloat64(ingressRequests.WithLabelValues(fastHost, fmt.Sprint(tc.status)))
			rc := dialRaw(t, ing.HTTPAddr())
			rc.send(fmt.Sprintf(tc.request, path, fastHost))
			for _, code := range tc.interim {
				if resp, _ := rc.read(tc.method); resp.StatusCode != code {
					t.Fatalf("interim response %d, want %d", resp.StatusCode, code)
				}
			}
			resp, body := rc.read(tc.method)
			if resp.StatusCode != tc.status || body != tc.body {
				t.Fatalf("got %d with %d bytes %.40q, want %d with %d bytes %.40q", resp.StatusCode, len(body), body, tc.status, len(tc.body), tc.body)
			}
			// The fast path passes the backend's reason phrase on, net/http
			// writes the standard one.
			if tc.status != 502 && (tc.script.response == "" || strings.Contains(tc.script.response, " Fast\r\n")) {
				if handedOver := !strings.HasSuffix(resp.Status, " Fast"); handedOver != tc.handedOver {
					t.Errorf("status %q: served by net/http: %v, want %v", resp.Status, handedOver, tc.handedOver)
				}
			}
			if resp.Header.Get("Date") == "" {
				t.Error("no Date header: a proxy adds it when the backend leaves it out")
			}
			for k, v := range tc.header {
				if got := strings.Join(resp.Header.Values(k), ","); got != v {
					t.Errorf("response header %s: %q, want %q", k, got, v)
				}
			}
			for k, v := range tc.trailer {
				if got := resp.Trailer.Get(k); got != v {
					t.Errorf("trailer %s: %q, want %q", k, got, v)
				}
			}
			if tc.seen != nil {
				r, body := sb.received("/" + path)
				if r == nil {
					t.Fatal("the backend saw no request")
				}
				tc.seen(t, r, body)
			}
			counted := 1.0
			switch {
			case tc.closes:
				if !resp.Close || !rc.closed() {
					t.Errorf("connection left open (Connection: close sent: %v), want it closed", resp.Close)
				}
			case !tc.noFollowUp:
				// The connection is still in step: the next request works.
				rc.send("GET /next HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
				if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "ok" {
					t.Errorf("follow-up request: %d %q, want 200 \"ok\"", resp.StatusCode, body)
				}
				if tc.status == 200 {
					counted++
				}
			}
			// Requests are counted once answered, so wait for the count.
			moved := func() float64 {
				return testutil.ToFloat64(ingressRequests.WithLabelValues(fastHost, fmt.Sprint(tc.status))) - before
			}
			waitFor(t, 2*time.Second, fmt.Sprintf("%v requests counted with status %d", counted, tc.status), func() bool { return moved() >= counted })
			if got := moved(); got != counted {
				t.Errorf("rune_ingress_requests_total{status=%d} moved by %v, want %v", tc.status, got, counted)
			}
		})
	}
}

func TestFastPathPipelinedRequests(t *testing.T) {
	ing, sb := fastSetup(t)
	sb.script("/a", script{response: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"})
	sb.script("/b", script{response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n"})
	rc := dialRaw(t, ing.HTTPAddr())
	req := "GET /%s HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n"
	rc.send(fmt.Sprintf(req, "a") + fmt.Sprintf("POST /c HTTP/1.1\r\nHost: %s\r\nContent-Length: 3\r\n\r\nabc", fastHost) + fmt.Sprintf(req, "b"))
	for _, want := range []string{"a", "ok", "b"} {
		if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != want {
			t.Fatalf("pipelined response: %d %q, want 200 %q", resp.StatusCode, body, want)
		}
	}
	if _, body := sb.received("/c"); body != "abc" {
		t.Errorf("backend got body %q for the pipelined POST, want \"abc\"", body)
	}
}

// A backend may close an idle keep-alive connection at any time; the next
// request must not fail for it.
func TestFastPathRedialsWhenBackendClosedIdleConnection(t *testing.T) {
	ing, sb := fastSetup(t)
	sb.script("/", script{response: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", closeAfter: true})
	rc := dialRaw(t, ing.HTTPAddr())
	for k, req := range []string{
		"GET / HTTP/1.1\r\nHost: %s\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: %s\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: 1\r\n\r\nx", // the closed connection is noticed before sending
		"DELETE / HTTP/1.1\r\nHost: %s\r\n\r\n",
	} {
		rc.send(fmt.Sprintf(req, fastHost))
		if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q, want 200 \"ok\"", k, resp.StatusCode, body)
		}
		// On loopback the backend's FIN is with the ingress once its close returns.
		want := int32(k + 1)
		waitFor(t, 5*time.Second, "the backend to close its connection", func() bool { return sb.closed.Load() == want })
	}
	if n := sb.accepted.Load(); n != 4 {
		t.Errorf("backend accepted %d connections, want 4 (one per request)", n)
	}
}

func TestFastPathStreamsResponseAsItComes(t *testing.T) {
	ing, sb := fastSetup(t)
	release := make(chan struct{})
	first := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nevent1\r\n"
	sb.script("/events", script{response: first + "6\r\nevent2\r\n0\r\n\r\n", split: len(first), hold: func() { <-release }})
	rc := dialRaw(t, ing.HTTPAddr())
	rc.send("GET /events HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "event1" {
		t.Fatalf("first event: %q, %v; want it before the backend sends more", buf, err)
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "event2" {
		t.Errorf("rest of the stream: %q, want \"event2\"", rest)
	}
}

func TestFastPathStreamsRequestBody(t *testing.T) {
	ing, sb := fastSetup(t)
	rc := dialRaw(t, ing.HTTPAddr())
	rc.send("PUT /upload HTTP/1.1\r\nHost: " + fastHost + "\r\nContent-Length: 10\r\n\r\nhello")
	// The backend has a connection once the head is on its way: the rest of
	// the body comes after it, alone.
	waitFor(t, 5*time.Second, "the ingress to connect to the backend", func() bool { return sb.accepted.Load() == 1 })
	rc.send("world")
	if resp, body := rc.read("PUT"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("%d %q, want 200 \"ok\"", resp.StatusCode, body)
	}
	if _, body := sb.received("/upload"); body != "helloworld" {
		t.Errorf("backend got %q, want \"helloworld\"", body)
	}
	rc.send("GET /next HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
	if resp, _ := rc.read("GET"); resp.StatusCode != 200 {
		t.Errorf("follow-up: %d, want 200", resp.StatusCode)
	}
}

// A backend may answer before reading the whole body (413, 401) and close.
func TestFastPathBackendAnswersBeforeBody(t *testing.T) {
	n := newNode(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testkit.Serve(t, ln, func(c net.Conn) {
		http.ReadRequest(bufio.NewReader(c))
		io.WriteString(c, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		c.Close()
	})
	ing := startIngress(t, n, ACMEOptions{})
	n.cast(t, "fast", ln.Addr().(*net.TCPAddr).Port, fastHost, "")
	n.addInstance(t, "fast", "fast-1", "127.0.0.1")
	waitRoute(t, ing, fastHost, 1)
	rc := dialRaw(t, ing.HTTPAddr())
	rc.send("POST /big HTTP/1.1\r\nHost: " + fastHost + "\r\nContent-Length: 100000000\r\n\r\nstart")
	if resp, _ := rc.read("POST"); resp.StatusCode != 413 {
		t.Fatalf("status %d, want the backend's 413", resp.StatusCode)
	}
	if !rc.closed() {
		t.Error("connection left open with the body unsent, want it closed")
	}
}

func TestFastPathHeaderTooLargeIs431(t *testing.T) {
	ing, _ := fastSetup(t)
	rc := dialRaw(t, ing.HTTPAddr())
	rc.send("GET / HTTP/1.1\r\nHost: " + fastHost + "\r\nX-Big: " + strings.Repeat("x", 70<<10) + "\r\n\r\n")
	if resp, _ := rc.read("GET"); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", resp.StatusCode)
	}
}

func TestFastPathDialFailureIs502AndTriesOtherEndpoints(t *testing.T) {
	n := newNode(t)
	sb := startScriptedBackend(t, "127.0.0.1")
	ing := startIngress(t, n, ACMEOptions{})
	n.cast(t, "fast", sb.port, fastHost, "")
	n.addInstance(t, "fast", "fast-dead", "127.0.0.3") // nothing listens there
	waitRoute(t, ing, fastHost, 1)
	before := testutil.ToFloat64(ingressRequests.WithLabelValues(fastHost, "502"))
	rc := dialRaw(t, ing.HTTPAddr())
	rc.send("GET / HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
	if resp, _ := rc.read("GET"); resp.StatusCode != 502 {
		t.Fatalf("only endpoint dead: status %d, want 502", resp.StatusCode)
	}
	if got := testutil.ToFloat64(ingressRequests.WithLabelValues(fastHost, "502")) - before; got != 1 {
		t.Errorf("502s counted %v times, want 1", got)
	}
	// With a live endpoint beside the dead one, no request fails: a failed
	// dial is retried on another endpoint.
	n.addInstance(t, "fast", "fast-1", "127.0.0.1")
	waitRoute(t, ing, fastHost, 2)
	for k := 0; k < 20; k++ {
		rc.send("GET / HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
		if resp, _ := rc.read("GET"); resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d, want 200", k, resp.StatusCode)
		}
	}
}

// Over TLS, HTTP/1.1 is forwarded by the fast path, HTTP/2 and what the fast
// path hands over by net/http; the backend sees https either way.
func TestFastPathOverTLS(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	ca := newTestCA(t)
	sb := startScriptedBackend(t, "127.0.0.1")
	ing := startIngress(t, n, ACMEOptions{})
	certPEM, keyPEM := ca.issue(t, time.Now().Add(24*time.Hour), fastHost)
	if _, err := StoreTLSSecret(ctx, n.Log, "default", "fast-tls", certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	n.cast(t, "fast", sb.port, fastHost, "    tls:\n      mode: manual\n      secret: fast-tls\n")
	n.addInstance(t, "fast", "fast-1", "127.0.0.1")
	waitRoute(t, ing, fastHost, 1)
	waitFor(t, 5*time.Second, "the manual certificate", func() bool { r, _ := statusOf(ing, fastHost); return r.Cert == CertReady })

	for k, tc := range []struct {
		name       string
		protos     []string
		expect     bool
		proto      string
		handedOver bool
	}{
		{"HTTP/1.1, fast path", []string{"http/1.1"}, false, "HTTP/1.1", false},
		{"no ALPN, fast path", nil, false, "HTTP/1.1", false},
		{"HTTP/1.1 handed over", []string{"http/1.1"}, true, "HTTP/1.1", true},
		{"HTTP/2", []string{"h2"}, false, "HTTP/2.0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := client(ing.HTTPSAddr(), ca.pool())
			tr := c.Transport.(*http.Transport)
			tr.TLSClientConfig.NextProtos = tc.protos
			tr.ForceAttemptHTTP2 = len(tc.protos) > 0 && tc.protos[0] == "h2"
			path := fmt.Sprintf("/tls%d", k)
			req, _ := http.NewRequest("POST", "https://"+fastHost+path, strings.NewReader("x"))
			if tc.expect {
				req.Header.Set("Expect", "100-continue")
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Proto != tc.proto {
				t.Fatalf("%s %d %q, want %s 200", resp.Proto, resp.StatusCode, b, tc.proto)
			}
			if handedOver := !strings.HasSuffix(resp.Status, " Fast"); handedOver != tc.handedOver {
				t.Errorf("status %q: served by net/http: %v, want %v", resp.Status, handedOver, tc.handedOver)
			}
			r, body := sb.received(path)
			if r == nil || body != "x" || r.Header.Get("X-Forwarded-Proto") != "https" || r.Header.Get("X-Forwarded-For") != "127.0.0.1" || r.Header.Get("X-Forwarded-Host") != fastHost {
				t.Errorf("backend got %v with body %q, want X-Forwarded-Proto https, -For 127.0.0.1, -Host %s, body \"x\"", r, body, fastHost)
			}
		})
	}
	// A Host the SNI's route does not match is answered 421 by net/http.
	conn, err := tls.Dial("tcp", ing.HTTPSAddr().String(), &tls.Config{ServerName: fastHost, RootCAs: ca.pool()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: other.example.test\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("unknown Host over TLS: %v %v, want 421", resp, err)
	}
}

func TestFastPathCloseEndsIdleConnections(t *testing.T) {
	n := newNode(t)
	sb := startScriptedBackend(t, "127.0.0.1")
	ing, err := New(n.Log, n.View, Options{HTTPAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ing.Start(); err != nil {
		t.Fatal(err)
	}
	n.cast(t, "fast", sb.port, fastHost, "")
	n.addInstance(t, "fast", "fast-1", "127.0.0.1")
	waitRoute(t, ing, fastHost, 1)
	rc := dialRaw(t, ing.HTTPAddr())
	rc.send("GET / HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
	rc.read("GET")
	start := time.Now()
	if err := ing.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v with an idle keep-alive connection open", d)
	}
	if !rc.closed() {
		t.Error("the idle connection was left open")
	}
}

// With the fast path off, net/http serves every request: it writes the
// standard reason phrase where the fast path passes the backend's on.
func TestFastPathOffServesThroughNetHTTP(t *testing.T) {
	for _, mode := range servingPaths {
		t.Run(mode.name, func(t *testing.T) {
			sb := startScriptedBackend(t, "127.0.0.1")
			ing := setupTo(t, sb.port, Options{DisableFastPath: mode.off})
			rc := dialRaw(t, ing.HTTPAddr())
			rc.send("GET / HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
			resp, body := rc.read("GET")
			if resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("%d %q, want 200 \"ok\"", resp.StatusCode, body)
			}
			if fast := resp.Status == "200 Fast"; fast == mode.off {
				t.Errorf("status %q with the fast path off: %v", resp.Status, mode.off)
			}
		})
	}
}
