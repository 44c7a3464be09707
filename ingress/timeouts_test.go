package ingress

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/runenet/runenet/internal/testkit"
)

// Every timeout of Options.Timeouts and the client-gone cancellation, on
// both serving paths, and a leak check after broken requests.

var servingPaths = []struct {
	name string
	off  bool
}{{"fast path", false}, {"net/http path", true}}

// holdingBackend reads a request head and then neither answers nor closes:
// it reports when the ingress closes the connection.
type holdingBackend struct {
	port     int
	accepted atomic.Int32
	closed   chan struct{} // one value per connection the ingress closed
	answer   string        // if set, written after the request head instead of holding,
	repeat   string        // and then this, for as long as the ingress takes it
}

func startHoldingBackend(t *testing.T, answer, repeat string) *holdingBackend {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hb := &holdingBackend{port: ln.Addr().(*net.TCPAddr).Port, closed: make(chan struct{}, 100), answer: answer, repeat: repeat}
	testkit.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		hb.accepted.Add(1)
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err == nil && hb.answer != "" {
			_, err := io.WriteString(c, hb.answer)
			for err == nil && hb.repeat != "" {
				_, err = io.WriteString(c, hb.repeat)
			}
		}
		io.Copy(io.Discard, br)
		hb.closed <- struct{}{}
	})
	return hb
}

func (hb *holdingBackend) waitClosed(t *testing.T, within time.Duration, what string) {
	t.Helper()
	select {
	case <-hb.closed:
	case <-time.After(within):
		t.Fatalf("the ingress kept the backend connection open %v after %s", within, what)
	}
}

func TestClientHeaderAndIdleTimeouts(t *testing.T) {
	for _, mode := range servingPaths {
		t.Run(mode.name, func(t *testing.T) {
			sb := startScriptedBackend(t, "127.0.0.1")
			ing := setupTo(t, sb.port, Options{DisableFastPath: mode.off, Timeouts: Timeouts{ClientHeader: 300 * time.Millisecond, ClientIdle: 600 * time.Millisecond}})
			slow := dialRaw(t, ing.HTTPAddr())
			slow.send("GET / HTTP/1.1\r\nHost: " + fastHost + "\r\n") // and never the end of the head
			start := time.Now()
			if !slow.closed() {
				t.Errorf("a client sending a head slowly was not cut off after the header timeout (%v)", time.Since(start))
			}
			idle := dialRaw(t, ing.HTTPAddr())
			idle.send("GET / HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
			idle.read("GET")
			if !idle.closed() {
				t.Error("an idle keep-alive connection was not closed after the idle timeout")
			}
		})
	}
}

func TestClientBodyTimeoutIs408AndReleasesTheBackend(t *testing.T) {
	for _, mode := range servingPaths {
		t.Run(mode.name, func(t *testing.T) {
			hb := startHoldingBackend(t, "", "")
			ing := setupTo(t, hb.port, Options{DisableFastPath: mode.off, Timeouts: Timeouts{ClientBody: 300 * time.Millisecond}})
			rc := dialRaw(t, ing.HTTPAddr())
			rc.send("POST /up HTTP/1.1\r\nHost: " + fastHost + "\r\nContent-Length: 10\r\n\r\nhello") // and never the rest
			if resp, _ := rc.read("POST"); resp.StatusCode != http.StatusRequestTimeout {
				t.Errorf("status %d, want 408", resp.StatusCode)
			}
			if !rc.closed() {
				t.Error("connection left open after a stalled body")
			}
			hb.waitClosed(t, 5*time.Second, "the body stalled")
		})
	}
}

func TestBackendHeaderTimeoutIs504(t *testing.T) {
	for _, mode := range servingPaths {
		t.Run(mode.name, func(t *testing.T) {
			hb := startHoldingBackend(t, "", "")
			ing := setupTo(t, hb.port, Options{DisableFastPath: mode.off, Timeouts: Timeouts{BackendHeader: 300 * time.Millisecond}})
			rc := dialRaw(t, ing.HTTPAddr())
			rc.send("GET /slow HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
			if resp, _ := rc.read("GET"); resp.StatusCode != http.StatusGatewayTimeout {
				t.Errorf("status %d, want 504", resp.StatusCode)
			}
			hb.waitClosed(t, 5*time.Second, "giving up on it")
			if n := hb.accepted.Load(); n != 1 {
				t.Errorf("the request was sent on %d connections, want 1 (a timed-out request is not sent again)", n)
			}
		})
	}
}

// blackhole returns a loopback address whose connects hang: a listening
// socket with a full accept queue that never accepts.
func blackhole(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// Fill the queue: from then on SYNs to it are dropped.
	for k := 0; ; k++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
		if k == 16 {
			t.Fatal("the accept queue does not fill")
		}
	}
	return addr
}

func TestBackendConnectTimeoutIs504(t *testing.T) {
	_, port, _ := strings.Cut(blackhole(t), ":")
	for _, mode := range servingPaths {
		t.Run(mode.name, func(t *testing.T) {
			var p int
			fmt.Sscan(port, &p)
			ing := setupTo(t, p, Options{DisableFastPath: mode.off, Timeouts: Timeouts{BackendConnect: 300 * time.Millisecond}})
			rc := dialRaw(t, ing.HTTPAddr())
			rc.send("GET / HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
			if resp, _ := rc.read("GET"); resp.StatusCode != http.StatusGatewayTimeout {
				t.Errorf("status %d, want 504", resp.StatusCode)
			}
		})
	}
}

func TestSendTimeoutClosesAClientThatStopsReading(t *testing.T) {
	for _, mode := range servingPaths {
		t.Run(mode.name, func(t *testing.T) {
			// An endless chunked response the client never reads.
			chunk := fmt.Sprintf("%x\r\n%s\r\n", 64<<10, strings.Repeat("x", 64<<10))
			hb := startHoldingBackend(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", chunk)
			ing := setupTo(t, hb.port, Options{DisableFastPath: mode.off, Timeouts: Timeouts{Send: 300 * time.Millisecond}})
			rc := dialRaw(t, ing.HTTPAddr())
			rc.c.(*net.TCPConn).SetReadBuffer(4 << 10)
			rc.send("GET /big HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
			hb.waitClosed(t, 10*time.Second, "the client stopped reading")
		})
	}
}

func TestClientGoneCancelsTheBackendExchange(t *testing.T) {
	for _, mode := range servingPaths {
		t.Run(mode.name, func(t *testing.T) {
			hb := startHoldingBackend(t, "", "")
			ing := setupTo(t, hb.port, Options{DisableFastPath: mode.off}) // default timeouts: 60s for the head
			rc := dialRaw(t, ing.HTTPAddr())
			rc.send("GET /slow HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
			waitFor(t, 5*time.Second, "the backend to get the request", func() bool { return hb.accepted.Load() == 1 })
			rc.c.Close()
			hb.waitClosed(t, 3*time.Second, "the client went away")
		})
	}
}

func TestBackendIdleTimeoutRetiresPooledConnections(t *testing.T) {
	sb := startScriptedBackend(t, "127.0.0.1")
	idle := 200 * time.Millisecond
	ing := setupTo(t, sb.port, Options{Timeouts: Timeouts{BackendIdle: idle}})
	rc := dialRaw(t, ing.HTTPAddr())
	rc.send("GET / HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
	rc.read("GET")
	rc.send("GET / HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
	rc.read("GET")
	if n := sb.accepted.Load(); n != 1 {
		t.Fatalf("%d backend connections for two requests in a row, want 1 (reused)", n)
	}
	last := time.Now()
	waitFor(t, 5*time.Second, "the backend idle timeout to pass", func() bool { return time.Since(last) > idle })
	rc.send("GET / HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
	rc.read("GET")
	if n := sb.accepted.Load(); n != 2 {
		t.Errorf("%d backend connections, want 2: one idle past the timeout is not reused", n)
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// After many broken requests of every kind, nothing stays held: the
// process's descriptors and goroutines come back to where they were.
func TestBrokenRequestsLeakNothing(t *testing.T) {
	for _, mode := range servingPaths {
		t.Run(mode.name, func(t *testing.T) {
			// The backend answers, except /slow, which it holds until the
			// ingress closes the connection.
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var slow atomic.Int32
			testkit.Serve(t, ln, func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if _, err := io.Copy(io.Discard, req.Body); err != nil {
						return
					}
					if req.URL.Path == "/slow" {
						slow.Add(1)
						io.Copy(io.Discard, br)
						return
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			})
			ing := setupTo(t, ln.Addr().(*net.TCPAddr).Port, Options{DisableFastPath: mode.off})
			warm := dialRaw(t, ing.HTTPAddr())
			warm.send("GET / HTTP/1.1\r\nHost: " + fastHost + "\r\nConnection: close\r\n\r\n")
			warm.read("GET")
			if !warm.closed() {
				t.Fatal("warm-up connection left open")
			}
			baseFDs, baseG := openFDs(t), runtime.NumGoroutine()
			broken := []string{
				"POST /c HTTP/1.1\r\nHost: %[1]s\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
				"POST /c HTTP/1.1\r\nHost: %[1]s\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n",
				"POST /c HTTP/1.1\r\nHost: %[1]s\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n",
				"POST /c HTTP/1.1\r\nHost: %[1]s\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n",
				"POST /c HTTP/1.1\r\nHost: %[1]s\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
				"POST /c HTTP/1.1\r\nHost: %[1]s\r\nContent-Length: 100000\r\n\r\nabandoned mid-body",
				"POST /c HTTP/1.1\r\nHost: %[1]s\r\nTransfer-Encoding: chunked\r\n\r\n100\r\nabandoned mid-chunk",
				"GET /slow HTTP/1.1\r\nHost: %[1]s\r\n\r\n", // the client goes while the backend holds the response
			}
			for round := 0; round < 3; round++ {
				for _, req := range broken {
					rc := dialRaw(t, ing.HTTPAddr())
					rc.send(fmt.Sprintf(req, fastHost))
					if strings.HasPrefix(req, "GET /slow") {
						want := int32(round + 1)
						waitFor(t, 5*time.Second, "the backend to get the slow request", func() bool { return slow.Load() == want })
					}
					rc.c.Close()
				}
			}
			waitFor(t, 10*time.Second, "descriptors and goroutines back to their baseline", func() bool {
				fds, g := openFDs(t), runtime.NumGoroutine()
				return fds <= baseFDs+2 && g <= baseG+2
			})
		})
	}
}
