package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/runenet/runenet/orderedlog"
)

// Node is a runed's record, stored under nodes/<name>: written when it
// starts and rewritten by its heartbeat, so every node learns its peers'
// addresses and container subnets (the routes follow them) and the leader
// learns which peers have stopped.
type Node struct {
	Name string `json:"name"`
	// Address is the node's cluster (host) address, the gateway peers route
	// its Subnet via; invalid on a single-node store without --cluster-addr.
	Address netip.Addr `json:"address,omitempty"`
	// Subnet is the node's container subnet, inside the container CIDR;
	// its /24 blocks are claimed under network/subnets/ so no two nodes
	// hold one.
	Subnet netip.Prefix `json:"subnet"`
	Roles  []string     `json:"roles,omitempty"` // e.g. "edge"
	// Heartbeat is when the node last wrote its record (its own clock; the
	// leader judges liveness by when it saw the record change, not by this).
	Heartbeat time.Time `json:"heartbeat"`
	// HeartbeatEvery is the node's heartbeat period, so the leader never
	// declares it dead faster than a few of its beats.
	HeartbeatEvery time.Duration `json:"heartbeatEvery"`
	// Down is when the leader, having seen no heartbeat for the grace
	// period, marked the node's instances unready (zero while it is alive);
	// Unreadied are those instances, which the node makes ready again at
	// its next heartbeat.
	Down      time.Time `json:"down,omitempty"`
	Unreadied []string  `json:"unreadied,omitempty"`
}

// HasRole reports whether the node has role r.
func (n *Node) HasRole(r string) bool {
	for _, x := range n.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// ContainerNetwork is stored under network/containers: the cluster-wide
// range node container subnets are carved from.
type ContainerNetwork struct {
	CIDR    netip.Prefix `json:"cidr"`
	Created time.Time    `json:"created"`
}

// NodeSubnetBits is the size of the blocks the container CIDR is split into:
// each node claims one /24, or the blocks its --node-subnet covers.
const NodeSubnetBits = 24

// ParseContainerCIDR validates a --container-cidr value: IPv4, private, and
// holding at least one /24 node subnet.
func ParseContainerCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("container CIDR %q: not a CIDR (want e.g. 10.88.0.0/16)", s)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("container CIDR %q: only IPv4 is supported", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("container CIDR %q has host bits set; did you mean %s?", s, p.Masked())
	}
	if p.Bits() > NodeSubnetBits || p.Bits() < 8 {
		return netip.Prefix{}, fmt.Errorf("container CIDR %q: want a /8 to /%d, split into a /%d per node", s, NodeSubnetBits, NodeSubnetBits)
	}
	if !private(p) {
		return netip.Prefix{}, fmt.Errorf("container CIDR %q is not private address space: use a range inside 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10", s)
	}
	return p, nil
}

func private(p netip.Prefix) bool {
	for _, r := range rfc1918 {
		if r.Bits() <= p.Bits() && r.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// BootstrapContainerNetwork records the container CIDR on first start (also
// of a store bootstrapped before container subnets existed) and refuses a
// different one later: nodes' subnets and their containers' addresses live
// in it. It must not overlap the cluster (VIP) CIDR.
func BootstrapContainerNetwork(ctx context.Context, log orderedlog.Log, cidr netip.Prefix) error {
	kv, ok, _, err := log.Get(ctx, keyContainerNetwork)
	if err != nil {
		return err
	}
	if ok {
		var cn ContainerNetwork
		if err := cn.decode(kv.Value); err != nil {
			return fmt.Errorf("stored container network is unreadable: %w", err)
		}
		if cn.CIDR != cidr {
			return fmt.Errorf("this cluster's container CIDR is %s, but runed was started with --container-cidr %s; "+
				"start runed with --container-cidr %s (nodes keep their subnets)", cn.CIDR, cidr, cn.CIDR)
		}
		return nil
	}
	if kv, ok, _, err := log.Get(ctx, keyClusterNetwork); err != nil {
		return err
	} else if ok {
		var vips ClusterNetwork
		if err := vips.decode(kv.Value); err == nil && vips.CIDR.Overlaps(cidr) {
			return fmt.Errorf("--container-cidr %s overlaps the cluster (VIP) CIDR %s: container addresses and VIPs must not share a range; pick another --container-cidr", cidr, vips.CIDR)
		}
	}
	_, err = log.Propose(ctx, []orderedlog.Op{orderedlog.PutIf(keyContainerNetwork, (&ContainerNetwork{CIDR: cidr, Created: time.Now().UTC()}).encode(), 0)})
	if errors.Is(err, orderedlog.ErrConflict) {
		return BootstrapContainerNetwork(ctx, log, cidr)
	}
	return err
}

// subnetBlocks lists the /24 blocks p covers (the one holding it if p is
// smaller), in address order.
func subnetBlocks(p netip.Prefix) []netip.Addr {
	if p.Bits() >= NodeSubnetBits {
		b, _ := p.Addr().Prefix(NodeSubnetBits)
		return []netip.Addr{b.Addr()}
	}
	n := 1 << (NodeSubnetBits - p.Bits())
	out := make([]netip.Addr, 0, n)
	for i := range n {
		out = append(out, blockAt(p.Addr(), i))
	}
	return out
}

// blockAt is the i-th /24 block from base.
func blockAt(base netip.Addr, i int) netip.Addr {
	b := base.As4()
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], binary.BigEndian.Uint32(b[:])+uint32(i)<<(32-NodeSubnetBits))
	return netip.AddrFrom4(a)
}

// subnetClaim is who holds a /24 block, and at which revision.
type subnetClaim struct {
	node string
	rev  uint64
}

func (n *Node) encode() []byte {
	e := newRecordWriter()
	e.str(n.Name)
	e.addr(n.Address)
	e.addr(n.Subnet.Addr())
	e.int(n.Subnet.Bits())
	list(e, n.Roles, func(e *recordWriter, r *string) { e.str(*r) })
	e.time(n.Heartbeat)
	e.int(int(n.HeartbeatEvery))
	e.time(n.Down)
	list(e, n.Unreadied, func(e *recordWriter, id *string) { e.str(*id) })
	return e.b
}

func (n *Node) decode(b []byte) error {
	d := newRecordReader(b)
	n.Name, n.Address = d.str(), d.addr()
	addr, bits := d.addr(), d.int()
	n.Roles = readList(d, func(d *recordReader, r *string) { *r = d.str() })
	n.Heartbeat, n.HeartbeatEvery, n.Down = d.time(), time.Duration(d.int()), d.time()
	n.Unreadied = readList(d, func(d *recordReader, id *string) { *id = d.str() })
	if err := d.done(); err != nil {
		return err
	}
	n.Subnet = netip.Prefix{}
	if addr.IsValid() {
		p, err := addr.Prefix(bits)
		if err != nil {
			return err
		}
		n.Subnet = p
	}
	return nil
}

// A ContainerNetwork is stored in a ClusterNetwork's layout.
func (c *ContainerNetwork) encode() []byte {
	return (&ClusterNetwork{CIDR: c.CIDR, Created: c.Created}).encode()
}

func (c *ContainerNetwork) decode(b []byte) error {
	var cn ClusterNetwork
	if err := cn.decode(b); err != nil {
		return err
	}
	c.CIDR, c.Created = cn.CIDR, cn.Created
	return nil
}
