package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/orderedlog/badger"
	"github.com/runenet/runenet/policy"

	"github.com/runenet/runenet/internal/testkit"
)

// policyCluster casts docs into a real control plane (Badger log, View,
// controller), registers instances (id → "ns/service@ip") on node n1, and
// returns the View once it has all of it, and the controller.
func policyCluster(t *testing.T, docs []string, instances map[string]string) (*cluster.View, *cluster.Controller) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lg, err := badger.Open(t.TempDir(), badger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.Bootstrap(ctx, lg, netip.MustParsePrefix("10.96.0.0/16")); err != nil {
		t.Fatal(err)
	}
	view := cluster.NewView(lg, cluster.ViewOptions{})
	done := make(chan struct{})
	go func() { defer close(done); view.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; lg.Close() })
	ctl := cluster.NewController(lg, view, cluster.ControllerOptions{})
	files := make([]cluster.SourceFile, len(docs))
	for i, d := range docs {
		files[i] = cluster.SourceFile{Name: fmt.Sprintf("svc%d.yaml", i), Data: []byte(d)}
	}
	if _, _, err := ctl.Cast(ctx, files); err != nil {
		t.Fatal(err)
	}
	for id, where := range instances {
		var ns, svc, ip string
		if _, err := fmt.Sscanf(where, "%s %s %s", &ns, &svc, &ip); err != nil {
			t.Fatal(err)
		}
		in := cluster.Instance{ID: id, Namespace: ns, Service: svc, Node: "n1", IP: netip.MustParseAddr(ip), Ready: true}
		if _, err := ctl.RegisterInstance(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	return view, ctl
}

// TestPolicyAtAccept: with a policy engine, the proxy admits a new
// connection only if the source's egress policy and the destination's
// ingress policy both allow it, and refuses the rest with a reset at once.
func TestPolicyAtAccept(t *testing.T) {
	be := startBackend(t, "api")
	udpBE := startUDPBackend(t, "api")
	devAddr := netip.MustParseAddr("127.0.99.2")
	// The UDP port shares the TCP port's number: a free TCP port is almost
	// always free for UDP too.
	port := freePort(t, devAddr)
	view, _ := policyCluster(t, []string{
		fmt.Sprintf(`service:
  name: api
  namespace: test
  ports:
    - {name: http, port: %d, targetPort: %d}
    - {name: dns, port: %d, targetPort: %d, protocol: udp}
  networkPolicy:
    ingress:
      - from: [{service: web}, {cidr: 127.0.0.5/32}, {cidr: 127.0.0.8/32}]
`, port, be.addr().Port(), port, udpBE.Port()),
		"service:\n  name: web\n  namespace: test\n",
		"service:\n  name: db\n  namespace: test\n",
		"service:\n  name: jobs\n  namespace: test\n  networkPolicy:\n    egress:\n      - to: [{service: db}]\n",
	}, map[string]string{
		"api-1": "test api 127.0.0.1", "web-1": "test web 127.0.0.7", "jobs-1": "test jobs 127.0.0.8",
	})
	e := policy.NewEngine(view, "n1", policy.EngineOptions{})
	p := devProxy(t, Config{DevAddr: devAddr, Policy: func() *policy.Engine { return e }})
	p.Update(TableFrom(view.Snapshot()))

	denied := metricsFor(cluster.NamespacedName{Namespace: "test", Name: "api"}, cluster.TCP).denied
	for _, tc := range []struct {
		name, src string
		chargedTo string // the service whose policy denies; "" = allowed
	}{
		{"CIDRPeer", "127.0.0.5", ""},
		{"ServicePeer", "127.0.0.7", ""},
		{"UnknownSource", "127.0.0.6", "api"},
		{"SourceEgressDenies", "127.0.0.8", "jobs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			deniedBefore, dropsBefore := testutil.ToFloat64(denied), testkit.Metric(t, "rune_policy_drops_total", map[string]string{"service": tc.chargedTo, "namespace": "test", "reason": policy.ReasonDefaultDeny})
			start := time.Now()
			err := dialFrom(tc.src, netip.AddrPortFrom(devAddr, port))
			if tc.chargedTo == "" {
				if err != nil {
					t.Fatalf("from %s: %v", tc.src, err)
				}
				return
			}
			if !errors.Is(err, syscall.ECONNRESET) || time.Since(start) > time.Second {
				t.Fatalf("from %s: want a reset at once, got %v after %v", tc.src, err, time.Since(start))
			}
			if d := testutil.ToFloat64(denied) - deniedBefore; d != 1 {
				t.Errorf(`connections_total{result="denied"} moved by %v, want 1`, d)
			}
			if d := testkit.Metric(t, "rune_policy_drops_total", map[string]string{"service": tc.chargedTo, "namespace": "test", "reason": policy.ReasonDefaultDeny}) - dropsBefore; d != 1 {
				t.Errorf("rune_policy_drops_total of %s moved by %v, want 1", tc.chargedTo, d)
			}
		})
	}

	t.Run("UDPDeniedFlowDropped", func(t *testing.T) {
		for src, allowed := range map[string]bool{"127.0.0.5": true, "127.0.0.6": false} {
			c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(src), 0)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(devAddr, port)))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(300 * time.Millisecond))
			c.Write([]byte("hi"))
			_, err = c.Read(make([]byte, 64))
			if (err == nil) != allowed {
				t.Errorf("UDP from %s: allowed=%v, read error %v", src, allowed, err)
			}
		}
	})

	t.Run("AdmitDoesNotAllocate", func(t *testing.T) {
		r := p.routes.Load().front(frontKey{cluster.TCP, netip.AddrPortFrom(devAddr, port)})
		src := netip.MustParseAddr("127.0.0.7")
		if n := testing.AllocsPerRun(100, func() { p.admit(src, r) }); n != 0 {
			t.Errorf("admitting a connection allocates %v times", n)
		}
	})

}

// TestPolicyClosedUntilTables: a proxy whose routes are newer than its
// policy engine's tables, or that has no engine yet (netpolicy has not
// started), refuses every connection a policy governs — even one the
// policy would allow — and still serves services without a policy.
func TestPolicyClosedUntilTables(t *testing.T) {
	be := startBackend(t, "be")
	// open's instance: a second address with the same port, since an
	// instance IP belongs to one service.
	ln, err := net.Listen("tcp4", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), be.addr().Port()).String())
	if err != nil {
		t.Fatal(err)
	}
	testkit.Serve(t, ln, func(c net.Conn) { fmt.Fprintln(c, "open"); c.Close() })
	devAddr := netip.MustParseAddr("127.0.99.3")
	apiPort, openPort := freePort(t, devAddr), freePort(t, devAddr)
	view, ctl := policyCluster(t, []string{
		fmt.Sprintf(`service:
  name: api
  namespace: test
  ports: [{port: %d, targetPort: %d}]
  networkPolicy:
    ingress:
      - from: [{cidr: 127.0.0.5/32}]
`, apiPort, be.addr().Port()),
		fmt.Sprintf("service:\n  name: open\n  namespace: test\n  ports: [{port: %d, targetPort: %d}]\n", openPort, be.addr().Port()),
		"service:\n  name: jobs\n  namespace: test\n  networkPolicy:\n    egress:\n      - to: [{cidr: 0.0.0.0/0}]\n",
	}, map[string]string{"api-1": "test api 127.0.0.1", "open-1": "test open 127.0.0.2", "jobs-1": "test jobs 127.0.0.8"})
	var engine atomic.Pointer[policy.Engine]
	p := devProxy(t, Config{DevAddr: devAddr, Policy: engine.Load})
	api, open := netip.AddrPortFrom(devAddr, apiPort), netip.AddrPortFrom(devAddr, openPort)
	notReady := func(svc string) float64 {
		return testkit.Metric(t, "rune_policy_drops_total", map[string]string{"service": svc, "namespace": "test", "policy": "test/" + svc, "reason": policy.ReasonNotReady})
	}
	// expect dials from src and checks the outcome: allowed, or refused at
	// once and charged to the policy of refusedBy as not-ready.
	expect := func(t *testing.T, src string, to netip.AddrPort, refusedBy string) {
		t.Helper()
		before := notReady(refusedBy)
		err := dialFrom(src, to)
		if refusedBy == "" {
			if err != nil {
				t.Errorf("%s → %s: %v, want allowed", src, to, err)
			}
			return
		}
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%s → %s: %v, want a reset", src, to, err)
		}
		if d := notReady(refusedBy) - before; d != 1 {
			t.Errorf("%s → %s: not-ready drops of test/%s moved by %v, want 1", src, to, refusedBy, d)
		}
	}

	t.Run("NoEngineYet", func(t *testing.T) {
		p.Update(TableFrom(view.Snapshot()))
		expect(t, "127.0.0.5", api, "api") // the one source api's policy allows
		expect(t, "127.0.0.8", open, "jobs")
		expect(t, "127.0.0.5", open, "")
	})

	// An engine whose tables stop at the current state (it is not run, so
	// it compiles nothing newer), then routes from a later write.
	e := policy.NewEngine(view, "n1", policy.EngineOptions{})
	engine.Store(e)
	t.Run("TablesAsNewAsRoutes", func(t *testing.T) {
		expect(t, "127.0.0.5", api, "")
		expect(t, "127.0.0.8", open, "")
	})
	if _, err := ctl.RegisterInstance(context.Background(), cluster.Instance{ID: "open-2", Namespace: "test", Service: "open", Node: "n1", IP: netip.MustParseAddr("127.0.0.9"), Ready: true}); err != nil {
		t.Fatal(err)
	}
	p.Update(TableFrom(view.Snapshot()))
	t.Run("TablesOlderThanRoutes", func(t *testing.T) {
		if e.Tables().Seq >= view.Snapshot().Seq {
			t.Fatalf("tables at seq %d are not behind the routes (%d)", e.Tables().Seq, view.Snapshot().Seq)
		}
		expect(t, "127.0.0.5", api, "api")
		expect(t, "127.0.0.8", open, "jobs")
		expect(t, "127.0.0.5", open, "")
	})
	t.Run("CaughtUp", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); e.Run(ctx) }()
		defer func() { cancel(); <-done }()
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		if err := e.WaitFor(wctx, view.Snapshot().Seq); err != nil {
			t.Fatal(err)
		}
		expect(t, "127.0.0.5", api, "")
		before := notReady("api")
		if err := dialFrom("127.0.0.6", api); !errors.Is(err, syscall.ECONNRESET) || notReady("api") != before {
			t.Errorf("127.0.0.6 → api: %v, not-ready moved by %v; want a reset by the policy itself", err, notReady("api")-before)
		}
	})
}

// dialFrom connects from src to addr and reads the backend's greeting.
func dialFrom(src string, addr netip.AddrPort) error {
	d := net.Dialer{Timeout: time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(src), 0))}
	c, err := d.Dial("tcp4", addr.String())
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	_, err = c.Read(make([]byte, 64))
	return err
}
