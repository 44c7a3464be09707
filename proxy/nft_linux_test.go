package proxy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/runenet/runenet/cluster"
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
		{cluster.TCP, vip("10.96.0.10:80"), 15001},
		{cluster.TCP, vip("10.96.0.11:443"), 15001},
		{cluster.UDP, vip("10.96.0.10:53"), 40000},
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
		{cluster.TCP, vip("10.96.0.10:80"), 15002},
		{cluster.TCP, vip("10.96.0.12:8080"), 15002},
		{cluster.UDP, vip("10.96.0.10:53"), 40000},
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
			rs[i] = Redirect{cluster.TCP, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)}), 80), 15001}
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
