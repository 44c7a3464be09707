package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
)

func TestBalancesAcrossEndpoints(t *testing.T) {
	p := devProxy(t, Config{})
	bs := []*backend{startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")}
	port := freePort(t, p.cfg.DevAddr)
	p.Update(&Table{Ports: []ServicePort{tcpPort("balance", port, bs[0].addr(), bs[1].addr(), bs[2].addr())}})
	front := netip.AddrPortFrom(p.cfg.DevAddr, port)
	const n = 300
	for range n {
		c, err := dialVia(t, front)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	for _, b := range bs {
		if got := b.count(); got < n/6 {
			t.Errorf("backend %s got %d of %d connections; want a fair share", b.name, got, n)
		}
	}
}

func TestPowerOfTwoChoicesPrefersLessLoaded(t *testing.T) {
	p := devProxy(t, Config{})
	a, b := startBackend(t, "a"), startBackend(t, "b")
	port := freePort(t, p.cfg.DevAddr)
	p.Update(&Table{Ports: []ServicePort{tcpPort("p2c", port, a.addr(), b.addr())}})
	front := netip.AddrPortFrom(p.cfg.DevAddr, port)
	// Held connections: each new one sees the load of the ones before.
	held := map[string]int{}
	for range 40 {
		c, err := dialVia(t, front)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held[c.backend]++
	}
	if held["a"] < 14 || held["b"] < 14 {
		t.Errorf("held connections split %v; p2c on active connections should keep them near 20/20", held)
	}
}

func TestFailedDialRetriedAndEjected(t *testing.T) {
	p := devProxy(t, Config{EjectBase: time.Minute})
	good := startBackend(t, "good")
	dead := deadAddr(t)
	port := freePort(t, p.cfg.DevAddr)
	sp := tcpPort("eject", port, dead, good.addr())
	p.Update(&Table{Ports: []ServicePort{sp}})
	front := netip.AddrPortFrom(p.cfg.DevAddr, port)
	// Counters are process-wide: compare deltas, so -count=N runs agree.
	m := metricsFor(sp.Service, cluster.TCP)
	failures0, ejections0 := testutil.ToFloat64(m.dialFailures), testutil.ToFloat64(m.ejections)
	for range 30 {
		c, err := dialVia(t, front)
		if err != nil {
			t.Fatalf("connection failed although one endpoint is up: %v", err)
		}
		c.Close()
	}
	if got := testutil.ToFloat64(m.dialFailures) - failures0; got != 1 {
		t.Errorf("dial failures = %v; want exactly 1 (the dead endpoint is ejected after its first failure)", got)
	}
	if got := testutil.ToFloat64(m.ejections) - ejections0; got != 1 {
		t.Errorf("ejections = %v; want 1", got)
	}
}

func TestEndpointRemovalDrains(t *testing.T) {
	p := devProxy(t, Config{})
	a, b := startBackend(t, "a"), startBackend(t, "b")
	port := freePort(t, p.cfg.DevAddr)
	p.Update(&Table{Ports: []ServicePort{tcpPort("drain", port, a.addr())}})
	front := netip.AddrPortFrom(p.cfg.DevAddr, port)
	old, err := dialVia(t, front)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	p.Update(&Table{Ports: []ServicePort{tcpPort("drain", port, b.addr())}})
	old.echo(t, "still here") // the removed endpoint's connection survives
	for range 10 {
		c, err := dialVia(t, front)
		if err != nil {
			t.Fatal(err)
		}
		if c.backend != "b" {
			t.Fatalf("new connection went to removed endpoint %s", c.backend)
		}
		c.Close()
	}
	old.echo(t, "and still")
}

func TestNoEndpointsRefusedAtOnce(t *testing.T) {
	p := devProxy(t, Config{})
	port := freePort(t, p.cfg.DevAddr)
	p.Update(&Table{Ports: []ServicePort{tcpPort("zero", port)}})
	start := time.Now()
	_, err := dialVia(t, netip.AddrPortFrom(p.cfg.DevAddr, port))
	if !isRefusal(err) {
		t.Fatalf("want a reset or refusal, got %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusal took %v", d)
	}
}

func isRefusal(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, io.EOF)
}

func TestFailsClosedWhenStale(t *testing.T) {
	var stale atomic.Bool
	p := devProxy(t, Config{Stale: stale.Load})
	a := startBackend(t, "a")
	port := freePort(t, p.cfg.DevAddr)
	sp := tcpPort("stale", port, a.addr())
	p.Update(&Table{Ports: []ServicePort{sp}})
	front := netip.AddrPortFrom(p.cfg.DevAddr, port)
	est, err := dialVia(t, front)
	if err != nil {
		t.Fatal(err)
	}
	defer est.Close()
	refused0 := testutil.ToFloat64(metricsFor(sp.Service, cluster.TCP).stale)
	stale.Store(true)
	if _, err := dialVia(t, front); !isRefusal(err) {
		t.Fatalf("new connection while stale: want a reset, got %v", err)
	}
	if got := testutil.ToFloat64(metricsFor(sp.Service, cluster.TCP).stale) - refused0; got != 1 {
		t.Errorf("stale refusals counted %v; want 1", got)
	}
	est.echo(t, "established connections continue")
	stale.Store(false)
	c, err := dialVia(t, front)
	if err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	c.Close()
}

func TestHalfCloseIsForwarded(t *testing.T) {
	// The backend reads until EOF, then answers: only works if the client's
	// CloseWrite reaches it while the other direction stays open.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		got, _ := io.ReadAll(c)
		c.Write(append([]byte("got "), got...))
	}()
	p := devProxy(t, Config{})
	port := freePort(t, p.cfg.DevAddr)
	p.Update(&Table{Ports: []ServicePort{tcpPort("halfclose", port, ln.Addr().(*net.TCPAddr).AddrPort())}})
	c, err := net.DialTCP("tcp4", nil, net.TCPAddrFromAddrPort(netip.AddrPortFrom(p.cfg.DevAddr, port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("request"))
	c.CloseWrite()
	resp, err := io.ReadAll(c)
	if err != nil || string(resp) != "got request" {
		t.Fatalf("response %q, %v", resp, err)
	}
}

func TestDevPortClashReported(t *testing.T) {
	p := devProxy(t, Config{DevAddr: netip.MustParseAddr("127.0.99.2")})
	a := startBackend(t, "a")
	port := freePort(t, p.cfg.DevAddr)
	first, second := tcpPort("clash-a", port, a.addr()), tcpPort("clash-b", port, a.addr())
	p.Update(&Table{Ports: []ServicePort{first, second}})
	if got := p.Clashes(); len(got) != 1 {
		t.Fatalf("clashes = %q; want one", got)
	}
	if got := testutil.ToFloat64(devPortClashes); got != 1 {
		t.Errorf("rune_proxy_dev_port_clashes = %v; want 1", got)
	}
	// The clashing service stays reachable through an explicit forward.
	reachByForward(t, p, second.Service, port)
	p.Update(&Table{Ports: []ServicePort{first}})
	if got := p.Clashes(); len(got) != 0 {
		t.Errorf("clashes after removing the second service: %q", got)
	}
}

// TestDevReservedPorts: the dev ingress's ports are never bound for a
// service, whether the ingress already holds them or binds them after the
// data plane has its table (a restart with the service in the store); the
// service gets a clash with the port-forward hint, and ClashesAt reports it
// once the table of a given seq is in.
func TestDevReservedPorts(t *testing.T) {
	addr := netip.MustParseAddr("127.0.99.4")
	a := startBackend(t, "a")
	for _, ingressFirst := range []bool{true, false} {
		t.Run(map[bool]string{true: "IngressFirst", false: "DataplaneFirst"}[ingressFirst], func(t *testing.T) {
			port := freePort(t, addr)
			bindIngress := func() {
				t.Helper()
				ln, err := net.Listen("tcp4", netip.AddrPortFrom(addr, port).String())
				if err != nil {
					t.Fatalf("the ingress cannot bind its port: %v", err)
				}
				t.Cleanup(func() { ln.Close() })
			}
			if ingressFirst {
				bindIngress()
			}
			p := devProxy(t, Config{DevAddr: addr, Reserved: []uint16{port}})
			svc := tcpPort("api", port, a.addr())
			p.Update(&Table{Seq: 7, Ports: []ServicePort{svc}})
			if !ingressFirst {
				bindIngress()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got, err := p.clashesAt(ctx, 7)
			want := Clash{svc.Service, cluster.TCP, port, fmt.Sprintf("%s is reserved for the ingress", netip.AddrPortFrom(addr, port))}
			if err != nil || len(got) != 1 || got[0] != want {
				t.Fatalf("clashes %v (%v), want [%v]", got, err, want)
			}
			if h := got[0].Hint(); !strings.Contains(h, fmt.Sprintf("rune port-forward -n test api 0:%d", port)) {
				t.Errorf("hint %q", h)
			}
			reachByForward(t, p, svc.Service, port)
		})
	}
}

// reachByForward connects to svc's port through a port-forward.
func reachByForward(t *testing.T, p *Proxy, svc cluster.NamespacedName, port uint16) {
	t.Helper()
	f, err := p.PortForward(svc, port, netip.MustParseAddrPort("127.0.0.1:0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := dialVia(t, f.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestPortForwardOnlyOnLoopback(t *testing.T) {
	p := devProxy(t, Config{})
	p.Update(&Table{Ports: []ServicePort{tcpPort("pf", 80)}})
	if _, err := p.PortForward(cluster.NamespacedName{Namespace: "test", Name: "pf"}, 80, netip.MustParseAddrPort("0.0.0.0:0"), nil); err == nil {
		t.Error("port-forward on 0.0.0.0 should be refused")
	}
	if _, err := p.PortForward(cluster.NamespacedName{Namespace: "test", Name: "pf"}, 81, netip.MustParseAddrPort("127.0.0.1:0"), nil); err == nil {
		t.Error("port-forward to a port the service lacks should fail")
	}
}

// In kernel mode a TCP port without an ingress policy is handed to the
// kernel (with the proxy behind it for loopback-sourced host connections);
// policed TCP ports, UDP, and ports without endpoints are not.
func TestKernelModeRedirects(t *testing.T) {
	p, err := New(Config{Kernel: true, InterceptAddr: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ep := netip.MustParseAddrPort("10.1.0.2:8080")
	open, policed, empty := tcpPort("open", 80, ep), tcpPort("policed", 81, ep), tcpPort("empty", 82)
	policed.Policed = true
	udp := tcpPort("dns", 53, ep)
	udp.Protocol = cluster.UDP
	got := map[uint16]Redirect{}
	for _, r := range p.Update(&Table{Ports: []ServicePort{open, policed, empty, udp}}) {
		got[r.VIP.Port()] = r
	}
	for _, tc := range []struct {
		port   uint16
		kernel bool
	}{{80, true}, {81, false}, {53, false}} {
		r, ok := got[tc.port]
		switch {
		case !ok:
			t.Errorf("port %d: no redirect", tc.port)
		case (r.Endpoints != nil) != tc.kernel || r.Port == 0:
			t.Errorf("port %d: %+v; want kernel forwarding %v and a proxy port", tc.port, r, tc.kernel)
		}
	}
	if _, ok := got[82]; ok {
		t.Errorf("a port without endpoints got a redirect (the guard refuses it): %+v", got[82])
	}
	if r := got[80]; !slices.Equal(r.Endpoints, []netip.AddrPort{ep}) {
		t.Errorf("kernel endpoints %v", r.Endpoints)
	}
}

// A deleted service's series leave /metrics; a service that stays keeps
// its own, and a recast service counts from scratch on live series.
func TestDeletedServiceMetricsForgotten(t *testing.T) {
	b := startBackend(t, "a")
	p := devProxy(t, Config{})
	gone, kept := tcpPort("metrics-gone", freePort(t, p.cfg.DevAddr), b.addr()), tcpPort("metrics-kept", freePort(t, p.cfg.DevAddr), b.addr())
	p.Update(&Table{Ports: []ServicePort{gone, kept}})
	for _, sp := range []ServicePort{gone, kept} {
		c, err := dialVia(t, netip.AddrPortFrom(p.cfg.DevAddr, sp.VIP.Port()))
		if err != nil {
			t.Fatal(err)
		}
		c.echo(t, "hi")
		c.Close()
	}
	if seriesOf(t, "metrics-gone") == 0 || seriesOf(t, "metrics-kept") == 0 {
		t.Fatalf("no series before the delete: gone %d, kept %d", seriesOf(t, "metrics-gone"), seriesOf(t, "metrics-kept"))
	}
	p.Update(&Table{Ports: []ServicePort{kept}})
	if n := seriesOf(t, "metrics-gone"); n != 0 {
		t.Errorf("%d series of the deleted service remain", n)
	}
	if seriesOf(t, "metrics-kept") == 0 {
		t.Error("the remaining service lost its series")
	}
	p.Update(&Table{Ports: []ServicePort{gone, kept}})
	c, err := dialVia(t, netip.AddrPortFrom(p.cfg.DevAddr, gone.VIP.Port()))
	if err != nil {
		t.Fatal(err)
	}
	c.echo(t, "again")
	c.Close()
	if got := testkit.Metric(t, "rune_proxy_connections_total", map[string]string{"service": "metrics-gone", "result": "ok"}); got != 1 {
		t.Errorf("recast service: %v ok connections exported, want 1", got)
	}
}

// seriesOf counts the exported series labelled service=svc.
func seriesOf(t *testing.T, svc string) int {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "service" && l.GetValue() == svc {
					n++
				}
			}
		}
	}
	return n
}

// A service port's series appear with its first connection, not with its
// route: 100,000 services no connection uses cost no metrics.
func TestMetricsMadeOnFirstConnection(t *testing.T) {
	b := startBackend(t, "a")
	p := devProxy(t, Config{})
	sp := tcpPort("metrics-lazy", freePort(t, p.cfg.DevAddr), b.addr())
	p.Update(&Table{Ports: []ServicePort{sp}})
	if n := seriesOf(t, "metrics-lazy"); n != 0 {
		t.Fatalf("%d series before any connection, want none", n)
	}
	c, err := dialVia(t, netip.AddrPortFrom(p.cfg.DevAddr, sp.VIP.Port()))
	if err != nil {
		t.Fatal(err)
	}
	c.echo(t, "hi")
	c.Close()
	if got := testkit.Metric(t, "rune_proxy_connections_total", map[string]string{"service": "metrics-lazy", "result": "ok"}); got != 1 {
		t.Errorf("after one connection: %v ok connections exported, want 1", got)
	}
}
