package ingress

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/policy"

	"github.com/runenet/runenet/internal/testkit"
)

func TestRoutesHostToEndpointsWithForwardedHeaders(t *testing.T) {
	n := newNode(t)
	port := startBackend(t, "web-1", "127.0.0.1", 0)
	ing := startIngress(t, n, ACMEOptions{})
	n.cast(t, "web", port, "web.example.test", "")
	n.addInstance(t, "web", "web-1", "127.0.0.1")
	c := client(ing.HTTPAddr(), nil)
	before := testutil.ToFloat64(ingressRequests.WithLabelValues("web.example.test", "200"))

	waitRoute(t, ing, "web.example.test", 1)
	resp, body := get(t, c, "http://WEB.example.test:80/hello?q=1")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, body %q", resp.StatusCode, body)
	}
	mustContain(t, "backend saw", body, "web-1", "host=WEB.example.test:80", "path=/hello", "xff=127.0.0.1", "proto=http", "xfh=WEB.example.test:80")
	if got := testutil.ToFloat64(ingressRequests.WithLabelValues("web.example.test", "200")) - before; got != 1 {
		t.Errorf("rune_ingress_requests_total{host=web.example.test,status=200} moved by %v, want 1", got)
	}
	// A client cannot forge its address for the backend.
	req, _ := http.NewRequest("GET", "http://web.example.test/", nil)
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	r2, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if !strings.Contains(string(b2), "xff=127.0.0.1 ") {
		t.Errorf("backend saw %q: want the client-sent X-Forwarded-For replaced by the client address", b2)
	}
	if row, _ := statusOf(ing, "web.example.test"); row.TLS != TLSNone || row.Cert != "" {
		t.Errorf("status row %+v, want tls none without cert state", row)
	}
}

func TestUnknownHostIs404AndRemovedHostStopsRouting(t *testing.T) {
	n := newNode(t)
	port := startBackend(t, "api-1", "127.0.0.1", 0)
	ing := startIngress(t, n, ACMEOptions{})
	n.cast(t, "api", port, "api.example.test", "")
	n.addInstance(t, "api", "api-1", "127.0.0.1")
	c := client(ing.HTTPAddr(), nil)
	waitRoute(t, ing, "api.example.test", 1)

	before := testutil.ToFloat64(ingressRequests.WithLabelValues("unknown", "404"))
	if resp, body := get(t, c, "http://other.example.test/"); resp.StatusCode != 404 || strings.Contains(body, "api") {
		t.Errorf("unknown host: status %d body %q, want a plain 404", resp.StatusCode, body)
	}
	if got := testutil.ToFloat64(ingressRequests.WithLabelValues("unknown", "404")) - before; got != 1 {
		t.Errorf("unknown-host 404s counted %v times, want 1", got)
	}

	// Re-cast without expose: once the View has the write, the very next
	// request must not be routed, even on a kept-alive connection.
	keep := client(ing.HTTPAddr(), nil)
	keep.Transport.(*http.Transport).DisableKeepAlives = false
	get(t, keep, "http://api.example.test/")
	n.cast(t, "api", port, "", "")
	waitFor(t, 2*time.Second, "the route table swap", func() bool { return ing.table.Load().lookup("api.example.test") == nil })
	if resp, _ := get(t, keep, "http://api.example.test/"); resp.StatusCode != 404 {
		t.Errorf("removed host: status %d, want 404", resp.StatusCode)
	}
}

func TestBalancesAcrossEndpointsAndEjectsDeadOne(t *testing.T) {
	n := newNode(t)
	port := startBackend(t, "a", "127.0.0.1", 0)
	startBackend(t, "b", "127.0.0.2", port)
	ing := startIngress(t, n, ACMEOptions{})
	n.cast(t, "app", port, "app.example.test", "")
	n.addInstance(t, "app", "app-a", "127.0.0.1")
	n.addInstance(t, "app", "app-b", "127.0.0.2")
	n.addInstance(t, "app", "app-dead", "127.0.0.3") // nothing listens there
	c := client(ing.HTTPAddr(), nil)
	waitRoute(t, ing, "app.example.test", 3)
	seen := map[string]int{}
	bad := 0
	for i := 0; i < 60; i++ {
		resp, body := get(t, c, "http://app.example.test/")
		if resp.StatusCode != 200 {
			bad++
			continue
		}
		seen[strings.Fields(body)[0]]++
	}
	if seen["a"] == 0 || seen["b"] == 0 {
		t.Errorf("requests per backend %v: want both live endpoints used", seen)
	}
	// Each dial failure ejects the dead endpoint with a growing back-off, so
	// it costs at most a request or two, not a third of them.
	if bad > 2 {
		t.Errorf("%d of 60 requests failed; the dead endpoint was not ejected", bad)
	}
}

func TestWebSocketThroughIngress(t *testing.T) {
	n := newNode(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := websocket.Upgrader{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			c.WriteMessage(mt, append([]byte("echo:"), msg...))
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	ing := startIngress(t, n, ACMEOptions{})
	n.cast(t, "ws", ln.Addr().(*net.TCPAddr).Port, "ws.example.test", "")
	n.addInstance(t, "ws", "ws-1", "127.0.0.1")
	waitRoute(t, ing, "ws.example.test", 1)

	before := testutil.ToFloat64(ingressRequests.WithLabelValues("ws.example.test", "101"))
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", ing.HTTPAddr().String())
	}}
	conn, _, err := d.Dial("ws://ws.example.test/chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		conn.WriteMessage(websocket.TextMessage, []byte(fmt.Sprint("hi", i)))
		_, msg, err := conn.ReadMessage()
		if err != nil || string(msg) != fmt.Sprint("echo:hi", i) {
			t.Fatalf("message %d: %q, %v", i, msg, err)
		}
	}
	conn.Close()
	waitFor(t, 2*time.Second, "the 101 to be counted", func() bool {
		return testutil.ToFloat64(ingressRequests.WithLabelValues("ws.example.test", "101"))-before == 1
	})
}

// Edge traffic to an exposed service with an ingress policy has no service
// identity: only a CIDR rule covering the client lets it through; otherwise
// 403, counted as a policy drop. Updating the policy flips it. Before the
// node has a policy engine, the policy-bearing service is refused whatever
// its rules say (fail closed, reason not-ready).
func TestNetworkPolicyAppliesAtTheEdge(t *testing.T) {
	n := newNode(t)
	port := startBackend(t, "api-1", "127.0.0.1", 0)
	var current atomic.Pointer[policy.Engine]
	ing := startIngressWith(t, n, Options{Policy: current.Load})
	engine := policy.NewEngine(n.View, "edge1", policy.EngineOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go engine.Run(ctx)

	castWithPolicy := func(peer string) uint64 {
		y := fmt.Sprintf("service:\n  name: api\n  ports:\n    - name: http\n      port: 80\n      targetPort: %d\n  expose:\n    host: api.example.test\n    port: http\n  networkPolicy:\n    ingress:\n      - from:\n          - %s\n", port, peer)
		_, seq, err := n.Ctl.Cast(ctx, []cluster.SourceFile{{Name: "api.yaml", Data: []byte(y)}})
		if err != nil {
			t.Fatal(err)
		}
		if err := engine.WaitFor(ctx, seq); err != nil {
			t.Fatal(err)
		}
		return seq
	}
	castWithPolicy("cidr: 127.0.0.0/8")
	seq := n.addInstance(t, "api", "api-1", "127.0.0.1")
	waitRoute(t, ing, "api.example.test", 1)
	c := client(ing.HTTPAddr(), nil)
	drops := func(reason string) float64 {
		return testkit.Metric(t, "rune_policy_drops_total", map[string]string{"reason": reason})
	}
	before := drops(policy.ReasonNotReady)
	if resp, body := get(t, c, "http://api.example.test/"); resp.StatusCode != http.StatusForbidden || strings.Contains(body, "api-1") {
		t.Fatalf("no policy engine yet: status %d body %q, want 403", resp.StatusCode, body)
	}
	if d := drops(policy.ReasonNotReady) - before; d != 1 {
		t.Fatalf("not-ready drops moved by %v, want 1", d)
	}
	// The route table is as new as the instance; the engine's tables must
	// be too, or the edge still (rightly) answers not-ready.
	if err := engine.WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
	current.Store(engine)
	if resp, body := get(t, c, "http://api.example.test/"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "api-1") {
		t.Fatalf("with the engine: status %d body %q, want the backend", resp.StatusCode, body)
	}

	castWithPolicy("service: web")
	before = drops(policy.ReasonDefaultDeny)
	if resp, body := get(t, c, "http://api.example.test/"); resp.StatusCode != http.StatusForbidden || strings.Contains(body, "api-1") {
		t.Fatalf("service-only policy: status %d body %q, want 403 (edge clients have no service identity)", resp.StatusCode, body)
	}
	if d := drops(policy.ReasonDefaultDeny) - before; d != 1 {
		t.Fatalf("policy drops moved by %v, want 1", d)
	}
	castWithPolicy("cidr: 127.0.0.0/8")
	if resp, body := get(t, c, "http://api.example.test/"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "api-1") {
		t.Fatalf("CIDR covering the client: status %d body %q, want the backend", resp.StatusCode, body)
	}
}
