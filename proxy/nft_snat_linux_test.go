package proxy

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/proxy/netnstest"
)

// Kernel forwarding masquerades only what needs it: an endpoint on another
// node sees a container client's own address, but the node's for a client
// outside the container CIDR; an endpoint outside it sees the node's; a hairpin (client and endpoint on the
// node's bridge) is masqueraded so the replies come back through the node.
// Without a container network every connection is masqueraded, as before.
// Container-to-container traffic keeps its source also past a Docker-style
// masquerade of the bridge's subnet (keepSourceRule).
//
//	client ns 10.88.1.5 + 192.168.50.5 ─┐
//	                                   br0 10.88.1.1 node ns 10.77.0.1 ── 10.77.0.2 remote ns (10.88.2.10
//	                                                                          and 192.168.60.10 on lo)
//	peer ns   10.88.1.20 ──────────────┘
func TestNFTKernelForwardingKeepsClusterSources(t *testing.T) {
	netnstest.RequireRoot(t)
	node := netnstest.New(t, "dp-snat")
	client, peer, remote := netnstest.New(t, "dp-snatc"), netnstest.New(t, "dp-snatp"), netnstest.New(t, "dp-snatr")
	node.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	netnstest.Bridge(t, node, "br0")
	node.Run(t, "ip", "addr", "add", "10.88.1.1/24", "dev", "br0")
	node.Run(t, "ip", "addr", "add", "192.168.50.1/24", "dev", "br0")
	cIf := netnstest.Attach(t, node, "br0", client, "10.88.1.5/24")
	client.Run(t, "ip", "addr", "add", "192.168.50.5/24", "dev", cIf)
	netnstest.Attach(t, node, "br0", peer, "10.88.1.20/24")
	netnstest.Link(t, node, "10.77.0.1/24", remote, "10.77.0.2/24")
	remote.Run(t, "ip", "addr", "add", "10.88.2.10/32", "dev", "lo")
	remote.Run(t, "ip", "addr", "add", "192.168.60.10/32", "dev", "lo")
	node.Run(t, "ip", "route", "add", "10.88.2.0/24", "via", "10.77.0.2")
	node.Run(t, "ip", "route", "add", "192.168.60.10/32", "via", "10.77.0.2")
	for _, ns := range []*netnstest.NS{client, peer} {
		ns.Run(t, "ip", "route", "add", "default", "via", "10.88.1.1")
	}
	remote.Run(t, "ip", "route", "add", "default", "via", "10.77.0.1")

	// Each endpoint answers with the source address it sees.
	serve := func(ns *netnstest.NS, addr string) netip.AddrPort {
		ep := netip.MustParseAddrPort(addr)
		var ln net.Listener
		var err error
		ns.Do(t, func() { ln, err = net.Listen("tcp", ep.String()) })
		if err != nil {
			t.Fatal(err)
		}
		testkit.Serve(t, ln, func(c net.Conn) {
			io.WriteString(c, c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().String())
			c.Close()
		})
		return ep
	}
	remoteVIP, hairpinVIP, outsideVIP := netip.MustParseAddrPort("10.96.0.10:80"), netip.MustParseAddrPort("10.96.0.11:80"), netip.MustParseAddrPort("10.96.0.12:80")
	rs := []Redirect{
		{Protocol: cluster.TCP, VIP: remoteVIP, Endpoints: []netip.AddrPort{serve(remote, "10.88.2.10:8080")}},
		{Protocol: cluster.TCP, VIP: hairpinVIP, Endpoints: []netip.AddrPort{serve(peer, "10.88.1.20:8080")}},
		{Protocol: cluster.TCP, VIP: outsideVIP, Endpoints: []netip.AddrPort{serve(remote, "192.168.60.10:8080")}},
	}
	seen := func(from string, vip netip.AddrPort) string {
		t.Helper()
		var b []byte
		var err error
		client.Do(t, func() {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 2 * time.Second}
			var c net.Conn
			if c, err = d.Dial("tcp", vip.String()); err == nil {
				c.SetDeadline(time.Now().Add(2 * time.Second))
				b, err = io.ReadAll(c)
				c.Close()
			}
		})
		if err != nil {
			t.Fatalf("from %s through %s: %v", from, vip, err)
		}
		return string(b)
	}

	n, err := NewNFT(NFTConfig{NetNS: node.FD})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	cidr := netip.MustParsePrefix("10.96.0.0/16")
	sync := func(sc SourceScope) {
		t.Helper()
		n.KeepSources(sc)
		if err := n.Sync(cidr, rs); err != nil {
			t.Fatal(err)
		}
		if err := n.Heartbeat(time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	sync(SourceScope{Containers: netip.MustParsePrefix("10.88.0.0/16"), Local: netip.MustParsePrefix("10.88.1.0/24")})
	for _, c := range []struct{ from, want string }{
		{"10.88.1.5", "10.88.1.5"},    // a container: its own address
		{"192.168.50.5", "10.77.0.1"}, // outside the container CIDR: the node's
	} {
		if got := seen(c.from, remoteVIP); got != c.want {
			t.Errorf("remote endpoint saw a connection from %s as %s; want %s", c.from, got, c.want)
		}
	}
	if got := seen("10.88.1.5", outsideVIP); got != "10.77.0.1" {
		t.Errorf("an endpoint outside the container CIDR saw %s; want the node's 10.77.0.1", got)
	}
	if got := seen("10.88.1.5", hairpinVIP); got != "10.88.1.1" {
		t.Errorf("hairpin endpoint saw %s; want the node's bridge address 10.88.1.1", got)
	}

	// Docker masquerades what leaves its bridge for another host. Container
	// to container keeps its source past that, direct and kernel-forwarded;
	// toward the outside Docker's rule still applies.
	node.Run(t, "nft", "add table ip dockerlike")
	node.Run(t, "nft", "add chain ip dockerlike post { type nat hook postrouting priority srcnat; }")
	node.Run(t, "nft", `add rule ip dockerlike post ip saddr 10.88.1.0/24 oifname != "br0" masquerade`)
	remoteEP, outsideEP := rs[0].Endpoints[0], rs[2].Endpoints[0]
	for _, c := range []struct {
		to   netip.AddrPort
		want string
	}{{remoteEP, "10.88.1.5"}, {remoteVIP, "10.88.1.5"}, {outsideEP, "10.77.0.1"}} {
		if got := seen("10.88.1.5", c.to); got != c.want {
			t.Errorf("beside a Docker-like masquerade, %s saw the container as %s; want %s", c.to, got, c.want)
		}
	}

	// No container network in the log: everything is masqueraded. The
	// scope change alone reinstalls the table.
	sync(SourceScope{})
	if got := seen("10.88.1.5", remoteVIP); got != "10.77.0.1" {
		t.Errorf("without a container network the remote endpoint saw %s; want the node's 10.77.0.1", got)
	}
	if got := seen("10.88.1.5", remoteEP); got != "10.77.0.1" {
		t.Errorf("without a container network Docker's masquerade should apply: the remote saw %s; want 10.77.0.1", got)
	}
}
