package routes

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/orderedlog/badger"
	"github.com/runenet/runenet/proxy/netnstest"
)

// routesIn lists a namespace's main-table IPv4 routes to the container
// CIDR as "DST via GW proto P" lines, sorted.
func routesIn(t *testing.T, ns *netnstest.NS) []string {
	t.Helper()
	out := ns.Run(t, "ip", "-4", "route", "show", "table", "main", "root", "10.88.0.0/16")
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	slices.Sort(lines)
	return lines
}

// route is a line of `ip route show`.
func route(dev, dst, gw, proto string) string {
	l := dst + " via " + gw + " dev " + dev
	if proto != "" {
		l += " proto " + proto
	}
	return l
}

// hostOnLAN makes a namespace whose interface dev has 192.0.2.1/24, a
// network shared with a second namespace, so 192.0.2.x are next hops.
func hostOnLAN(t *testing.T) (*netnstest.NS, string) {
	ns, lan := netnstest.New(t, "rtes"), netnstest.New(t, "rtlan")
	dev, _ := netnstest.Link(t, ns, "192.0.2.1/24", lan, "192.0.2.254/24")
	return ns, dev
}

// Routes follow the peer records inside a namespace the test made: one per
// peer, none to this node's own subnet, gone with the peer's record, moved
// with its address, restored when deleted by hand; routes that others
// installed are never touched, not even one to a peer's subnet.
func TestRoutesFollowPeerRecords(t *testing.T) {
	netnstest.RequireRoot(t)
	ns, dev := hostOnLAN(t)
	// Someone else's routes: one elsewhere in the container CIDR, one to
	// the subnet n4 will claim.
	ns.Run(t, "ip", "route", "add", "10.88.9.0/24", "via", "192.0.2.9")
	ns.Run(t, "ip", "route", "add", "10.88.4.0/24", "via", "192.0.2.99", "proto", "static")

	h, err := netlink.NewHandleAt(netns.NsHandle(ns.FD))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c := testkit.NewCluster(t, "10.96.0.0/16", badger.Options{}, cluster.ViewOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := cluster.BootstrapContainerNetwork(ctx, c.Log, netip.MustParsePrefix("10.88.0.0/16")); err != nil {
		t.Fatal(err)
	}
	register := func(name, addr, subnet string) {
		t.Helper()
		spec := cluster.NodeSpec{Name: name, Address: netip.MustParseAddr(addr)}
		if subnet != "" {
			spec.Subnet = netip.MustParsePrefix(subnet)
		}
		if _, _, err := c.Ctl.RegisterNode(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	register("n1", "192.0.2.1", "10.88.0.0/24")
	register("n2", "192.0.2.2", "10.88.1.0/24")
	register("n3", "192.0.2.3", "10.88.2.0/24")
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Options{Self: "n1", View: c.View, Handle: h, Resync: 100 * time.Millisecond})
	}()
	defer func() { cancel(); <-done }()

	foreign := []string{route(dev, "10.88.4.0/24", "192.0.2.99", "static"), route(dev, "10.88.9.0/24", "192.0.2.9", "")}
	want := func(ours ...string) func() bool {
		return func() bool {
			w := append(slices.Clone(foreign), ours...)
			slices.Sort(w)
			return slices.Equal(routesIn(t, ns), w)
		}
	}
	testkit.Eventually(t, 5*time.Second, "routes to n2 and n3", want(route(dev, "10.88.1.0/24", "192.0.2.2", "82"), route(dev, "10.88.2.0/24", "192.0.2.3", "82")))

	// n4's subnet already has someone's route: it stays as it is.
	register("n4", "192.0.2.4", "10.88.4.0/24")
	register("n3", "192.0.2.33", "")
	testkit.Eventually(t, 5*time.Second, "n3's route to move to its new address", want(route(dev, "10.88.1.0/24", "192.0.2.2", "82"), route(dev, "10.88.2.0/24", "192.0.2.33", "82")))
	if got := testkit.Metric(t, "rune_routes", nil); got != 2 {
		t.Errorf("rune_routes = %v, want 2", got)
	}

	if _, err := c.Ctl.RemoveNode(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, "n2's route to go with its record", want(route(dev, "10.88.2.0/24", "192.0.2.33", "82")))

	ns.Run(t, "ip", "route", "del", "10.88.2.0/24")
	testkit.Eventually(t, 5*time.Second, "a route deleted by hand to come back", want(route(dev, "10.88.2.0/24", "192.0.2.33", "82")))
}

// A peer whose address is not on a connected network gets no route, and
// the error says why; the others still get theirs.
func TestUnreachablePeerIsReported(t *testing.T) {
	netnstest.RequireRoot(t)
	ns, dev := hostOnLAN(t)
	h, err := netlink.NewHandleAt(netns.NsHandle(ns.FD))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	err = reconcile(h, map[netip.Prefix]netip.Addr{
		netip.MustParsePrefix("10.88.1.0/24"): netip.MustParseAddr("192.0.2.2"),
		netip.MustParsePrefix("10.88.2.0/24"): netip.MustParseAddr("198.51.100.7"),
	})
	if err == nil || !strings.Contains(err.Error(), "198.51.100.7 is not on a directly connected network") || !strings.Contains(err.Error(), "one layer-2 network") {
		t.Errorf("reconcile with an unreachable peer: %v", err)
	}
	if got := routesIn(t, ns); !slices.Equal(got, []string{route(dev, "10.88.1.0/24", "192.0.2.2", "82")}) {
		t.Errorf("routes: %q", got)
	}
}
