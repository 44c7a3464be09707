package rune

import (
	"net"
	"net/netip"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/cidr"

	"github.com/runenet/runenet/cluster"
)

// reverseZones are the in-addr.arpa. zones that cover a cluster CIDR, split
// on octet boundaries (a /12 is sixteen /16 zones) the way CoreDNS splits a
// CIDR server block key.
type reverseZones struct {
	cidr  netip.Prefix
	zones plugin.Zones
}

// reverseZone returns the reverse zone of the snapshot's cluster CIDR that
// holds qname, or "" when qname is not ours.
func (r *Rune) reverseZone(snap *cluster.Snapshot, qname string) string {
	if snap.Network == nil || !snap.Network.CIDR.Addr().Is4() {
		return ""
	}
	rz := r.rev.Load()
	if rz == nil || rz.cidr != snap.Network.CIDR {
		rz = newReverseZones(snap.Network.CIDR)
		r.rev.Store(rz)
	}
	return rz.zones.Matches(qname)
}

func newReverseZones(p netip.Prefix) *reverseZones {
	m := p.Masked()
	n := &net.IPNet{IP: m.Addr().AsSlice(), Mask: net.CIDRMask(m.Bits(), 32)}
	return &reverseZones{cidr: p, zones: cidr.Reverse(cidr.Split(n))}
}
