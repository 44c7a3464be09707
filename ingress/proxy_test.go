package ingress

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/runenet/runenet/internal/testkit"
)

// A backend that dies mid-body makes httputil.ReverseProxy abort the handler
// (panic(http.ErrAbortHandler)); the endpoint's in-flight count must still
// drop back and the request be counted, or balancing would shun the endpoint
// for good.
func TestAbortedResponseKeepsCountersExact(t *testing.T) {
	n := newNode(t)
	ca := newTestCA(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testkit.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
		}
	})
	ing := startIngress(t, n, ACMEOptions{})
	certPEM, keyPEM := ca.issue(t, time.Now().Add(time.Hour), "cut.example.test")
	exposeManual(t, n, ing, "cut", "cut.example.test", "127.0.0.1", ln.Addr().(*net.TCPAddr).Port, certPEM, keyPEM)
	b := ing.table.Load().lookup("cut.example.test").backends[0]
	counted := ingressRequests.WithLabelValues("cut.example.test", "200")
	before := testutil.ToFloat64(counted)

	// HTTP/2 is served by net/http and so by ReverseProxy.
	c := client(ing.HTTPSAddr(), ca.pool())
	const requests = 3
	for range requests {
		// The stream is reset, before or after the response head.
		resp, err := c.Get("https://cut.example.test/")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "stream error") {
			t.Fatalf("request %v, want an HTTP/2 stream reset", err)
		}
	}
	waitFor(t, 10*time.Second, "the aborted requests to be counted and leave the in-flight count", func() bool {
		return b.inflight.Load() == 0 && testutil.ToFloat64(counted) == before+requests
	})
}
