// Package routes keeps this host's routes to its peers' container subnets:
// for every other node record, a route to the node's subnet via its cluster
// address — the host-gateway model of flannel's host-gw backend, with no
// overlay and no encapsulation. It needs the nodes on one layer-2 network
// (each peer's address is a directly reachable next hop); see
// docs/cluster-network.md.
//
// The routes it installs carry their own protocol number (Protocol), by
// which it tells them from everyone else's: it changes and deletes only
// those, and leaves a subnet alone when another route to exactly it exists.
package routes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/runenet/runenet/cluster"
)

// Protocol marks the routes this package owns (rtm_protocol; `ip route
// show proto 82` lists them). It is outside the numbers the kernel and the
// common routing daemons use (iproute2's rt_protos).
const Protocol netlink.RouteProtocol = 82

// mainTable is the kernel's main routing table (RT_TABLE_MAIN).
const mainTable = 254

// retryAfter is how soon a failed sync is tried again.
const retryAfter = 2 * time.Second

// DefaultResync is how often the routes are checked against the records
// even when no record changed, so a route deleted by hand comes back.
const DefaultResync = 30 * time.Second

var (
	installed = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "rune_routes",
		Help: "Routes to peers' container subnets this node has installed.",
	})
	syncErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "rune_route_errors_total",
		Help: "Route syncs that left a peer's subnet without its route (e.g. its address is not on a directly connected network).",
	})
)

// View is what the routes follow; *cluster.View satisfies it.
type View interface {
	Snapshot() *cluster.Snapshot
	Changed() <-chan struct{}
}

// Options configure Run.
type Options struct {
	Self string // this node: no route to its own subnet
	View View
	// Handle is the netlink socket to change routes through; nil is this
	// process's namespace (tests pass one bound to a namespace they made).
	Handle *netlink.Handle
	Resync time.Duration // default DefaultResync
	Logger *slog.Logger
}

// Run keeps the routes in step with the node records until ctx ends. The
// routes stay when it returns: a restarting runed does not cut its peers
// off, and its next start reconciles them with the records.
func Run(ctx context.Context, opts Options) {
	if opts.Handle == nil {
		opts.Handle = &netlink.Handle{}
	}
	if opts.Resync <= 0 {
		opts.Resync = DefaultResync
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	log := opts.Logger.With("component", "routes")
	tick := time.NewTicker(opts.Resync)
	defer tick.Stop()
	var last *cluster.Snapshot
	var applied map[netip.Prefix]netip.Addr // what the last reconcile made
	var failing string
	var retry <-chan time.Time
	for {
		changed := opts.View.Changed()
		s := opts.View.Snapshot()
		c := s.ChangesSince(last)
		forced := last == nil || c.Full
		if want := desired(s, opts.Self); forced || len(c.Nodes) > 0 && !maps.Equal(want, applied) {
			// A heartbeat changes a record but not the routes it asks for:
			// only a change of them, or a resync, lists the routes.
			err := reconcile(opts.Handle, want)
			applied, retry = want, nil
			switch {
			case err != nil:
				syncErrors.Inc()
				if err.Error() != failing {
					log.Error("cannot install every peer route; retrying", "err", err)
				}
				failing, retry = err.Error(), time.After(retryAfter)
			case failing != "":
				log.Info("peer routes installed")
				failing = ""
			}
		}
		last = s
		select {
		case <-changed:
		case <-tick.C:
			last = nil // check everything, whatever changed
		case <-retry:
			last = nil
		case <-ctx.Done():
			return
		}
	}
}

// desired maps each peer's subnet to its address: the routes s asks for.
// A peer without a subnet or a usable IPv4 address (a single-node store's
// record, nodes sharing one host on loopback) gets none, nor one whose
// subnet overlaps this node's or whose address is this node's.
func desired(s *cluster.Snapshot, self string) map[netip.Prefix]netip.Addr {
	own, _ := s.Node(self)
	want := map[netip.Prefix]netip.Addr{}
	for _, e := range s.Nodes() {
		n := e.Value
		if n.Name == self || !n.Subnet.IsValid() || !n.Address.Is4() || n.Address.IsLoopback() || n.Address.IsUnspecified() {
			continue
		}
		if own.Value != nil && (own.Value.Subnet.Overlaps(n.Subnet) || own.Value.Address == n.Address) {
			continue
		}
		want[n.Subnet] = n.Address
	}
	return want
}

// reconcile makes this package's routes in the main table exactly want, leaving
// a subnet that another route already covers exactly to that route. It
// reports every subnet it could not route.
func reconcile(h *netlink.Handle, want map[netip.Prefix]netip.Addr) error {
	all, err := h.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: mainTable}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("listing routes: %w", err)
	}
	ours := map[netip.Prefix]netlink.Route{}
	foreign := map[netip.Prefix]netlink.Route{}
	for _, r := range all {
		dst, ok := prefixOf(r.Dst)
		if !ok {
			continue
		}
		if r.Protocol == Protocol {
			ours[dst] = r
		} else {
			foreign[dst] = r
		}
	}
	var problems []string
	for dst, r := range ours {
		if _, keep := want[dst]; keep {
			continue
		}
		if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			problems = append(problems, fmt.Sprintf("removing the route to %s: %v", dst, err))
			continue
		}
		delete(ours, dst)
	}
	for dst, gw := range want {
		if cur, ok := ours[dst]; ok && cur.Gw.Equal(gw.AsSlice()) {
			continue
		}
		if other, ok := foreign[dst]; ok {
			problems = append(problems, fmt.Sprintf("%s: left to the route already there (%s), which runed does not own", dst, other))
			continue
		}
		r := &netlink.Route{Dst: ipNet(dst), Gw: gw.AsSlice(), Protocol: Protocol, Table: mainTable}
		if err := h.RouteReplace(r); err != nil {
			if errors.Is(err, unix.ENETUNREACH) {
				err = fmt.Errorf("%s is not on a directly connected network: host-gateway routing needs the nodes on one layer-2 network (or run with --routes=false and route the subnets otherwise)", gw)
			}
			problems = append(problems, fmt.Sprintf("route to %s via %s: %v", dst, gw, err))
			continue
		}
		ours[dst] = *r
	}
	installed.Set(float64(len(ours)))
	if len(problems) > 0 {
		slices.Sort(problems)
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), bits), true
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
