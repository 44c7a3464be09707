package proxy

import (
	"net/netip"

	"github.com/runenet/runenet/cluster"
)

// SourceScope says which kernel-forwarded connections keep their source
// address. Inside the cluster nobody needs SNAT: the connection is DNATed on
// the client's node, and the endpoint's replies are routed back to the
// client's subnet, so through that node, which un-DNATs them. Masqueraded
// are connections from outside Containers (the node's own address, a host
// network), to an endpoint outside it (which may route the container
// subnet some other way), and hairpins: a client on this node's subnet DNATed to an
// endpoint on the same subnet would get the endpoint's replies across the
// bridge, past the node. That is kube-proxy's rule (masquerade off-cluster
// sources and hairpins) without relying on br_netfilter.
type SourceScope struct {
	// Containers is the cluster's container CIDR; invalid (no container
	// network in the log) masquerades every kernel-forwarded connection.
	Containers netip.Prefix
	// Local is this node's container subnet; invalid: no hairpin rule
	// (the node has no subnet of its own).
	Local netip.Prefix
}

// ScopeOf reads the source scope from the log: the container network and
// node's own record.
func ScopeOf(s *cluster.Snapshot, node string) SourceScope {
	var sc SourceScope
	if s.ContainerNetwork != nil {
		sc.Containers = s.ContainerNetwork.CIDR
	}
	if rec, ok := s.Node(node); ok && node != "" {
		sc.Local = rec.Value.Subnet
	}
	return sc
}
