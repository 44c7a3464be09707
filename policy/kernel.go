package policy

import (
	"cmp"
	"encoding/binary"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/runenet/runenet/cluster"
)

// kernelPlan is what the nftables chains must hold for one Tables: for each
// policy-bearing service with instances on this node, per direction, the
// guarded (local) instance IPs and the allowed (peer address range, protocol, port
// range) tuples. Peers are IPv4 only: instance IPs are IPv4, and IPv6 CIDR
// peers are enforced by the proxy alone.
type kernelPlan struct {
	chains []kernelChain
}

type kernelChain struct {
	service cluster.NamespacedName
	ingress bool
	guarded []netip.Addr // the local instances: destinations (ingress) or sources (egress)
	allow   []allowElem  // pairwise disjoint, as nftables' concatenated interval sets demand
}

// allowElem is a box: addresses lo..hi × protocols × ports, all inclusive.
type allowElem struct {
	lo, hi           uint32
	protoLo, protoHi uint8
	portLo, portHi   uint16
}

// span is an inclusive IPv4 range.
type span struct{ lo, hi uint32 }

// planKernel compiles t into kernel chains. With stale set every chain keeps
// its guarded instances but allows nothing: new connections of
// policy-bearing services are refused until the View catches up.
func planKernel(t *Tables, stale bool) kernelPlan {
	var p kernelPlan
	t.services.Range(func(n cluster.NamespacedName, sp *servicePolicy) bool {
		ms, _ := t.members.Get(n)
		var guarded []netip.Addr
		for _, m := range ms {
			if m.local && m.ip.Is4() {
				guarded = append(guarded, m.ip)
			}
		}
		if len(guarded) == 0 {
			return true
		}
		slices.SortFunc(guarded, netip.Addr.Compare)
		for _, dir := range []struct {
			rs      *ruleSet
			ingress bool
		}{{sp.ingress, true}, {sp.egress, false}} {
			if dir.rs == nil {
				continue
			}
			c := kernelChain{service: n, ingress: dir.ingress, guarded: guarded}
			if !stale {
				c.allow = t.allowElems(dir.rs)
			}
			p.chains = append(p.chains, c)
		}
		return true
	})
	// A stable order keeps chain layout identical across identical syncs.
	slices.SortFunc(p.chains, func(a, b kernelChain) int {
		return cmp.Or(
			strings.Compare(a.service.Namespace, b.service.Namespace),
			strings.Compare(a.service.Name, b.service.Name),
			cmp.Compare(boolRank(!a.ingress), boolRank(!b.ingress)))
	})
	return p
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// allowElems turns a rule set into disjoint boxes. Rules without ports give
// boxes over every protocol and port; rules with ports give one box per
// (protocol, instance port), minus the addresses the any-port boxes already
// cover, so no two boxes overlap. Peer node addresses are admitted on the
// proxied ports: a proxied cross-node connection was judged by the source
// node's proxy, which knows the client instance, and arrives from that
// node's address.
func (t *Tables) allowElems(rs *ruleSet) []allowElem {
	var anySpans []span
	perPort := map[portKey][]span{}
	for _, k := range rs.proxied {
		for _, a := range t.peers {
			if a.Is4() {
				perPort[k] = append(perPort[k], addrSpan(a))
			}
		}
	}
	for i := range rs.rules {
		r := &rs.rules[i]
		peers := t.peerSpans(r)
		if r.ports == nil {
			anySpans = append(anySpans, peers...)
			continue
		}
		for _, k := range r.kernelPorts {
			perPort[k] = append(perPort[k], peers...)
		}
	}
	anySpans = mergeSpans(anySpans)
	var out []allowElem
	for _, s := range anySpans {
		out = append(out, allowElem{lo: s.lo, hi: s.hi, protoLo: 0, protoHi: 255, portLo: 0, portHi: 65535})
	}
	// In port order: identical tables give identical element lists.
	keys := slices.SortedFunc(maps.Keys(perPort), func(a, b portKey) int {
		return cmp.Or(strings.Compare(string(a.proto), string(b.proto)), cmp.Compare(a.port, b.port))
	})
	for _, k := range keys {
		proto := protoNumber(k.proto)
		for _, s := range subtractSpans(mergeSpans(perPort[k]), anySpans) {
			out = append(out, allowElem{lo: s.lo, hi: s.hi, protoLo: proto, protoHi: proto, portLo: k.port, portHi: k.port})
		}
	}
	return out
}

// peerSpans is a rule's IPv4 peers as ranges: its CIDRs and the instances
// of its service peers, on every node (direct container-IP traffic from
// another node keeps its source address: no SNAT inside the cluster).
func (t *Tables) peerSpans(r *rule) []span {
	var out []span
	for _, c := range r.cidrs {
		if c.Addr().Is4() {
			lo := binary.BigEndian.Uint32(c.Addr().AsSlice())
			out = append(out, span{lo, lo | uint32(1<<(32-c.Bits())-1)})
		}
	}
	for _, n := range r.peers {
		ms, _ := t.members.Get(n)
		for _, m := range ms {
			if m.ip.Is4() {
				out = append(out, addrSpan(m.ip))
			}
		}
	}
	return out
}

// addrSpan is the one-address range of the IPv4 address a.
func addrSpan(a netip.Addr) span {
	v := binary.BigEndian.Uint32(a.AsSlice())
	return span{v, v}
}

// mergeSpans sorts and coalesces overlapping or adjacent ranges.
func mergeSpans(s []span) []span {
	if len(s) == 0 {
		return nil
	}
	slices.SortFunc(s, func(a, b span) int { return cmp.Compare(a.lo, b.lo) })
	out := []span{s[0]}
	for _, x := range s[1:] {
		last := &out[len(out)-1]
		if last.hi == ^uint32(0) || x.lo <= last.hi+1 {
			last.hi = max(last.hi, x.hi)
			continue
		}
		out = append(out, x)
	}
	return out
}

// subtractSpans returns a minus b; both merged (sorted, disjoint).
func subtractSpans(a, b []span) []span {
	var out []span
	j := 0
	for _, x := range a {
		lo := x.lo
		for j < len(b) && b[j].hi < lo {
			j++
		}
		covered := false
		for k := j; k < len(b) && b[k].lo <= x.hi; k++ {
			if b[k].lo > lo {
				out = append(out, span{lo, b[k].lo - 1})
			}
			if b[k].hi >= x.hi {
				covered = true
				break
			}
			lo = b[k].hi + 1
		}
		if !covered {
			out = append(out, span{lo, x.hi})
		}
	}
	return out
}

func protoNumber(p cluster.Protocol) uint8 {
	if p == cluster.UDP {
		return 17
	}
	return 6
}
