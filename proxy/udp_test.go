package proxy

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/runenet/runenet/cluster"
)

// startUDPBackend answers each datagram with "<name> <payload>".
func startUDPBackend(t *testing.T, name string) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			c.WriteToUDPAddrPort(append([]byte(name+" "), buf[:n]...), from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func udpRoundTrip(t *testing.T, c *net.UDPConn, msg string) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no reply to %q: %v", msg, err)
	}
	name, payload, _ := strings.Cut(string(buf[:n]), " ")
	if payload != msg {
		t.Fatalf("reply %q to %q", buf[:n], msg)
	}
	return name
}

func TestUDPFlowsStickAndExpire(t *testing.T) {
	p := devProxy(t, Config{DevAddr: netip.MustParseAddr("127.0.99.3"), UDPIdleTimeout: 200 * time.Millisecond})
	a, b := startUDPBackend(t, "a"), startUDPBackend(t, "b")
	port := freePort(t, p.cfg.DevAddr)
	sp := ServicePort{
		Service:   cluster.NamespacedName{Namespace: "test", Name: "udp"},
		Protocol:  cluster.UDP,
		VIP:       netip.AddrPortFrom(netip.MustParseAddr("10.96.0.11"), port),
		Endpoints: []netip.AddrPort{a, b},
	}
	p.Update(&Table{Ports: []ServicePort{sp}})
	front := net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.cfg.DevAddr, port))
	seen := map[string]int{}
	for i := range 20 {
		c, err := net.DialUDP("udp4", nil, front)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		first := udpRoundTrip(t, c, "hello")
		for range 3 {
			if got := udpRoundTrip(t, c, "again"); got != first {
				t.Fatalf("flow %d moved from %s to %s", i, first, got)
			}
		}
		seen[first]++
	}
	if seen["a"] == 0 || seen["b"] == 0 {
		t.Errorf("flows split %v; want both endpoints used", seen)
	}
	active := metricsFor(sp.Service, cluster.UDP).active
	if got := testutil.ToFloat64(active); got != 20 {
		t.Errorf("active flows = %v; want 20", got)
	}
	deadline := time.Now().Add(3 * time.Second)
	for testutil.ToFloat64(active) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("flows still active after the idle timeout: %v", testutil.ToFloat64(active))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
