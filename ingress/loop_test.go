package ingress

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/runenet/runenet/internal/testkit"
)

// An endpoint that is the ingress's own listener is left out of the route.
func TestEndpointOnOwnListenerIsRefused(t *testing.T) {
	n := newNode(t)
	ing := startIngress(t, n, ACMEOptions{})
	self := ing.HTTPAddr().(*net.TCPAddr).Port
	n.cast(t, "self", self, fastHost, "")
	n.addInstance(t, "self", "self-1", "127.0.0.1")
	waitFor(t, 5*time.Second, "the route", func() bool { return ing.table.Load().lookup(fastHost) != nil })
	if got := len(ing.table.Load().lookup(fastHost).backends); got != 0 {
		t.Fatalf("route has %d endpoints, want the ingress's own address left out", got)
	}
	rc := dialRaw(t, ing.HTTPAddr())
	rc.send("GET / HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
	if resp, _ := rc.read("GET"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503 (no endpoints)", resp.StatusCode)
	}
}

// A loop the address check cannot see (through a relay) ends at the second
// visit with 508, counted once per request.
func TestLoopThroughRelayIs508(t *testing.T) {
	for _, mode := range servingPaths {
		t.Run(mode.name, func(t *testing.T) {
			n := newNode(t)
			ing := startIngressWith(t, n, Options{DisableFastPath: mode.off})
			ln, err := net.Listen("tcp4", "127.0.0.2:0")
			if err != nil {
				t.Fatal(err)
			}
			testkit.Serve(t, ln, func(c net.Conn) {
				defer c.Close()
				up, err := net.Dial("tcp", ing.HTTPAddr().String())
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			})
			n.cast(t, "loop", ln.Addr().(*net.TCPAddr).Port, fastHost, "")
			n.addInstance(t, "loop", "loop-1", "127.0.0.2")
			waitRoute(t, ing, fastHost, 1)
			before := testutil.ToFloat64(ingressLoops.WithLabelValues(fastHost))
			rc := dialRaw(t, ing.HTTPAddr())
			rc.send("GET / HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
			if resp, _ := rc.read("GET"); resp.StatusCode != http.StatusLoopDetected {
				t.Fatalf("status %d, want 508", resp.StatusCode)
			}
			if got := testutil.ToFloat64(ingressLoops.WithLabelValues(fastHost)) - before; got != 1 {
				t.Errorf("rune_ingress_loops_total moved by %v, want 1", got)
			}
		})
	}
}
