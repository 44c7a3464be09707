package proxy

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/proxy/netnstest"
)

func TestNFTInstallUpdateClose(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t, "dp-nft")
	// A leftover table from a "crashed" runed, with a stale element.
	ns.Run(t, "nft", "add table ip rune; add chain ip rune junk")
	cidr := netip.MustParsePrefix("10.96.0.0/16")
	n, err := NewNFT(NFTConfig{NetNS: ns.FD})
	if err != nil {
		t.Fatal(err)
	}
	vip := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	rs := []Redirect{
		{cluster.TCP, vip("10.96.0.10:80"), 15001, nil},
		{cluster.TCP, vip("10.96.0.11:443"), 15001, nil},
		{cluster.UDP, vip("10.96.0.10:53"), 40000, nil},
	}
	if err := n.Sync(cidr, rs); err != nil {
		t.Fatal(err)
	}
	rules := ns.Run(t, "nft", "list", "ruleset")
	for _, want := range []string{
		"10.96.0.10 . 80 : 15001", "10.96.0.11 . 443 : 15001", "10.96.0.10 . 53 : 40000",
		"ip daddr . tcp dport map @svc_tcp", "ip daddr . udp dport map @svc_udp",
		"ip daddr 10.96.0.0/16", "reject with tcp reset",
	} {
		if !strings.Contains(rules, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, rules)
		}
	}
	if strings.Contains(rules, "junk") {
		t.Errorf("leftover table not replaced:\n%s", rules)
	}
	if route := ns.Run(t, "ip", "route", "show", "10.96.0.0/16"); !strings.Contains(route, "dev lo") {
		t.Errorf("route to the CIDR via lo missing: %q", route)
	}

	// One element changes port, one goes, one comes: only those are touched.
	rs = []Redirect{
		{cluster.TCP, vip("10.96.0.10:80"), 15002, nil},
		{cluster.TCP, vip("10.96.0.12:8080"), 15002, nil},
		{cluster.UDP, vip("10.96.0.10:53"), 40000, nil},
	}
	if err := n.Sync(cidr, rs); err != nil {
		t.Fatal(err)
	}
	rules = ns.Run(t, "nft", "list", "map", "ip", "rune", "svc_tcp")
	if !strings.Contains(rules, "10.96.0.10 . 80 : 15002") || !strings.Contains(rules, "10.96.0.12 . 8080 : 15002") || strings.Contains(rules, "10.96.0.11") {
		t.Errorf("map after update:\n%s", rules)
	}

	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	rules = ns.Run(t, "nft", "list", "tables")
	if strings.Contains(rules, "table ip rune\n") || !strings.Contains(rules, "table ip rune_guard") {
		t.Errorf("after Close want only the guard table, got:\n%s", rules)
	}
	if err := RemoveGuard(NFTConfig{NetNS: ns.FD}, cidr); err != nil {
		t.Fatal(err)
	}
	if rules := ns.Run(t, "nft", "list", "tables"); strings.TrimSpace(rules) != "" {
		t.Errorf("after RemoveGuard: %q", rules)
	}
	if route := ns.Run(t, "ip", "route", "show", "10.96.0.0/16"); strings.TrimSpace(route) != "" {
		t.Errorf("route left after RemoveGuard: %q", route)
	}
}

// More elements than one netlink attribute can carry must all land, both on
// install and on an incremental update.
func TestNFTLargeMaps(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t, "dp-nft")
	n, err := NewNFT(NFTConfig{NetNS: ns.FD})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	redirects := func(count int) []Redirect {
		rs := make([]Redirect, count)
		for i := range rs {
			rs[i] = Redirect{cluster.TCP, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)}), 80), 15001, nil}
		}
		return rs
	}
	cidr := netip.MustParsePrefix("10.96.0.0/16")
	for _, count := range []int{4000, 9000} {
		if err := n.Sync(cidr, redirects(count)); err != nil {
			t.Fatal(err)
		}
		if got := strings.Count(ns.Run(t, "nft", "list", "map", "ip", "rune", "svc_tcp"), ": 15001"); got != count {
			t.Errorf("map holds %d elements; want %d", got, count)
		}
	}
}

// Kernel forwarding inside one namespace: connections from a non-loopback
// source are DNATed across the endpoints, endpoint changes apply in place,
// a port can move between the kernel and the proxy, and without heartbeats
// forwarding lapses and the guard refuses.
func TestNFTKernelForwarding(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t, "dp-kfwd")
	// Addresses of their own on lo, so the client's source is not loopback
	// (those connections are left to the proxy).
	client := netip.MustParseAddr("192.0.2.1")
	var eps []netip.AddrPort
	for _, a := range []string{"192.0.2.1", "192.0.2.11", "192.0.2.12", "192.0.2.13"} {
		ns.Run(t, "ip", "addr", "add", a+"/32", "dev", "lo")
		if a == client.String() {
			continue
		}
		ep := netip.AddrPortFrom(netip.MustParseAddr(a), 8080)
		eps = append(eps, ep)
		var ln net.Listener
		var err error
		ns.Do(t, func() { ln, err = net.Listen("tcp", ep.String()) })
		if err != nil {
			t.Fatal(err)
		}
		testkit.Serve(t, ln, func(c net.Conn) {
			io.WriteString(c, ep.Addr().String())
			c.Close()
		})
	}
	vip := netip.MustParseAddrPort("10.96.0.10:80")
	dial := func() (string, error) {
		var b []byte
		var err error
		ns.Do(t, func() {
			d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(client, 0)), Timeout: time.Second}
			var c net.Conn
			if c, err = d.Dial("tcp", vip.String()); err == nil {
				b, err = io.ReadAll(c)
				c.Close()
			}
		})
		return string(b), err
	}
	counts := func(n int) map[string]int {
		got := map[string]int{}
		for range n {
			name, err := dial()
			if err != nil {
				t.Fatalf("through %s: %v", vip, err)
			}
			got[name]++
		}
		return got
	}

	n, err := NewNFT(NFTConfig{NetNS: ns.FD})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	cidr := netip.MustParsePrefix("10.96.0.0/16")
	sync := func(rs ...Redirect) {
		t.Helper()
		if err := n.Sync(cidr, rs); err != nil {
			t.Fatal(err)
		}
	}
	sync(Redirect{Protocol: cluster.TCP, VIP: vip, Endpoints: eps})
	if err := n.Heartbeat(time.Minute); err != nil {
		t.Fatal(err)
	}
	got := counts(90)
	for _, ep := range eps {
		if got[ep.Addr().String()] < 10 { // 30 expected; 10 is 4.5 sd below
			t.Errorf("endpoint %s got %d of 90 connections: %v", ep, got[ep.Addr().String()], got)
		}
	}
	// nft itself can list what we programmed (operators will).
	rules := ns.Run(t, "nft", "list", "table", "ip", "rune")
	for _, want := range []string{"map svc_tcp_ep_3 {", "dnat ip to ip daddr . th dport . numgen random mod 3 map @svc_tcp_ep_3", "10.96.0.10 . 80 . 0x00000002 : 192.0.2.13 . 8080", "masquerade"} {
		if !strings.Contains(rules, want) {
			t.Errorf("table ip rune lacks %q:\n%s", want, rules)
		}
	}

	// Endpoints change: only their map elements change.
	sync(Redirect{Protocol: cluster.TCP, VIP: vip, Endpoints: eps[2:]})
	if got := counts(10); got[eps[2].Addr().String()] != 10 {
		t.Errorf("after the change want all on %s, got %v", eps[2], got)
	}

	// To the proxy and back: the DNAT elements go, then come again.
	sync(Redirect{Protocol: cluster.TCP, VIP: vip, Port: 15001})
	rules = ns.Run(t, "nft", "list", "table", "ip", "rune")
	if strings.Contains(rules, "192.0.2.1") || !strings.Contains(rules, "10.96.0.10 . 80 : 15001") {
		t.Errorf("moved to the proxy, the table reads:\n%s", rules)
	}
	sync(Redirect{Protocol: cluster.TCP, VIP: vip, Endpoints: eps[:1]})
	if got := counts(5); got[eps[0].Addr().String()] != 5 {
		t.Errorf("back in the kernel want all on %s, got %v", eps[0], got)
	}

	// Heartbeats stop: forwarding lapses and the guard refuses at once.
	if err := n.Heartbeat(200 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if _, err := dial(); !errors.Is(err, syscall.ECONNREFUSED) || time.Since(start) > 500*time.Millisecond {
		t.Errorf("after the last heartbeat lapsed want a quick refusal, got %v after %v", err, time.Since(start))
	}
	// A patch carrying a heartbeat (its alive argument) turns it back on.
	if err := n.Patch(nil, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(); err != nil {
		t.Errorf("after a patch with a heartbeat: %v", err)
	}
}

// Kernel forwarding refuses to start on a node that does not forward IPv4,
// naming the sysctl, rather than leave containers' connections hanging.
func TestKernelForwardingNeedsIPForward(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t, "dp-fwd")
	for _, tc := range []struct {
		value string
		ok    bool
	}{{"0", false}, {"1", true}} {
		ns.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward="+tc.value)
		var err error
		ns.Do(t, func() { err = checkForwarding() })
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), "sysctl -w net.ipv4.ip_forward=1")) {
			t.Errorf("ip_forward=%s: %v", tc.value, err)
		}
	}
}
