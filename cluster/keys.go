package cluster

import (
	"net/netip"
	"strings"

	"github.com/runenet/runenet/orderedlog"
)

// Key builders: the only place outside orderedlog/ that spells the protected
// prefixes (scripts/check_orderedlog_seam.sh allows this file alone).
const (
	keyClusterNetwork = orderedlog.PrefixNetwork + "cluster"
	prefixVIPs        = orderedlog.PrefixNetwork + "vips/"
	// Claims make an instance id and an instance IP unique across the
	// cluster: a registration creates them with a "must not exist"
	// precondition, so two racing writers cannot both take one.
	prefixInstanceIDs = orderedlog.PrefixNetwork + "instance-ids/"
	prefixInstanceIPs = orderedlog.PrefixNetwork + "instance-ips/"
	// keyContainerNetwork holds the container CIDR; a node's subnet claims
	// its /24 blocks under prefixSubnets, created with "must not exist", so
	// two nodes claiming at once never both get one.
	keyContainerNetwork = orderedlog.PrefixNetwork + "containers"
	prefixSubnets       = orderedlog.PrefixNetwork + "subnets/"
)

func serviceKey(n NamespacedName) string {
	return orderedlog.PrefixServices + n.Namespace + "/" + n.Name
}
func endpointsKey(n NamespacedName) string {
	return orderedlog.PrefixEndpoints + n.Namespace + "/" + n.Name
}
func policyKey(n NamespacedName) string { return orderedlog.PrefixPolicy + n.Namespace + "/" + n.Name }
func vipKey(ip netip.Addr) string       { return prefixVIPs + ip.String() }
func instanceKey(node, id string) string {
	return orderedlog.PrefixLocalInstances + node + "/" + id
}
func nodeKey(name string) string         { return orderedlog.PrefixNodes + name }
func subnetKey(block netip.Addr) string  { return prefixSubnets + block.String() }
func instanceIDKey(id string) string     { return prefixInstanceIDs + id }
func instanceIPKey(ip netip.Addr) string { return prefixInstanceIPs + ip.String() }

// splitName parses "<prefix><ns>/<name>".
func splitName(key, prefix string) (NamespacedName, bool) {
	ns, name, ok := strings.Cut(strings.TrimPrefix(key, prefix), "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return NamespacedName{}, false
	}
	return NamespacedName{Namespace: ns, Name: name}, true
}
