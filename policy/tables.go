package policy

import (
	"net/netip"
	"slices"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/pmap"
)

// Verdict is the answer for one new connection, with what decided it so that
// drops can be counted and `rune policy check` can explain itself.
type Verdict struct {
	Allowed bool
	// Service owns the policy that decided (the destination for ingress, the
	// source for egress); zero when no policy applied.
	Service cluster.NamespacedName
	Policy  string // "namespace/name" of that policy, "" when none applied
	Rule    int    // index of the deciding rule in its direction's list; -1 for a default
	Reason  string
}

// Reasons, also the `reason` label of rune_policy_drops_total.
const (
	ReasonNoPolicy    = "no-policy"
	ReasonRuleMatch   = "rule-match"
	ReasonDefaultDeny = "default-deny"
	ReasonStale       = "stale"
	// ReasonNotReady labels refusals while the rule tables are missing or
	// older than the routes that carried the connection (see NotReady).
	ReasonNotReady = "not-ready"
	// ReasonKernel labels drops counted by the nftables chains.
	ReasonKernel = "kernel"
)

// Tables is the compiled policy of one node as of one snapshot. It is
// immutable: the Engine swaps whole Tables, so a decision never sees half of
// an update. Its maps are persistent (pmap), so the next Tables after a
// change of a few services shares all but a few small nodes with this one.
type Tables struct {
	Seq uint64
	// ids maps the instance IPs of every node to their service: source
	// identity is cluster-wide, learned from the replicated instances.
	ids pmap.Map[netip.Addr, identity]
	// members lists each service's instance IPs (every node's), for the
	// kernel's allow sets; the local ones are also its guarded addresses.
	members    pmap.Map[cluster.NamespacedName, []member]
	vips       pmap.Map[netip.Addr, cluster.NamespacedName]
	services   pmap.Map[cluster.NamespacedName, *servicePolicy]
	localCount int // instance rows of this node, for the gauge
	// peers are the other nodes' addresses, sorted: their proxies connect
	// to this node's instances on behalf of clients they already judged
	// (see allowElems).
	peers []netip.Addr
	// kernelSeq is the seq of the Tables whose services, members and peers
	// these are: equal kernelSeqs plan the same kernel table, so a write
	// that touches none of them (a certificate, a lease, a heartbeat) does
	// not reinstall it.
	kernelSeq uint64
}

// identity is what an instance address says about its sender.
type identity struct {
	service cluster.NamespacedName
	// local: the instance runs on this node, so its egress is ours to judge.
	local bool
}

type member struct {
	ip    netip.Addr
	local bool
}

// service is n's compiled policy, nil if it has none.
func (t *Tables) service(n cluster.NamespacedName) *servicePolicy {
	sp, _ := t.services.Get(n)
	return sp
}

// servicePolicy is one service's policy; a nil direction is default-allow.
// It depends only on the policy and service records (service peers are
// resolved by name at decision time), so an unchanged pair of revisions lets
// the next compile reuse it as is.
type servicePolicy struct {
	name                  cluster.NamespacedName
	label                 string // name.String(), computed once for verdicts
	ingress, egress       *ruleSet
	policyRev, serviceRev uint64
}

// ruleSet indexes one direction's rules by port first, so a decision costs
// two map lookups and two trie walks however many rules and peers there are.
type ruleSet struct {
	rules  []rule
	any    *matcher // rules without ports
	byPort map[portKey]*matcher
	// proxied (ingress only) are the instance ports some rule admits
	// someone on: those a peer node's proxy may reach on a client's behalf.
	proxied []portKey
}

// rule is one compiled PolicyRule, kept for the kernel plan and for listing.
type rule struct {
	peers []cluster.NamespacedName
	cidrs []netip.Prefix
	// ports is nil for "every port"; for ingress these are the service
	// (VIP) ports, and kernelPorts the matching instance (target) ports that
	// direct container-IP traffic uses.
	ports, kernelPorts []portKey
}

type portKey struct {
	proto cluster.Protocol
	port  uint16
}

// matcher finds the lowest rule allowing a peer: by identity or by address.
type matcher struct {
	ids   map[cluster.NamespacedName]int32
	cidrs trie
}

func newMatcher() *matcher {
	return &matcher{ids: map[cluster.NamespacedName]int32{}, cidrs: newTrie()}
}

func (m *matcher) match(id cluster.NamespacedName, known bool, addr netip.Addr) int32 {
	if m == nil {
		return noRule
	}
	best := noRule
	if addr.IsValid() {
		best = m.cidrs.lookup(addr)
	}
	if known {
		if r, ok := m.ids[id]; ok {
			best = min(best, r)
		}
	}
	return best
}

// source is what Compile reads; *cluster.Snapshot is one.
type source interface {
	RangeServices(func(cluster.Entry[cluster.ServiceRecord]) bool)
	Policy(cluster.NamespacedName) (cluster.Entry[cluster.NetworkPolicy], bool)
	Instances(ns, service string) []cluster.Entry[cluster.Instance]
	InstanceByIP(netip.Addr) (cluster.Entry[cluster.Instance], bool)
	Nodes() []cluster.Entry[cluster.Node]
}

// peerAddrs lists the addresses of the node records other than node's,
// sorted and once each: where peer nodes' proxied connections come from.
func peerAddrs(src source, node string) []netip.Addr {
	var out []netip.Addr
	for _, ne := range src.Nodes() {
		if n := ne.Value; n.Name != node && n.Address.IsValid() {
			out = append(out, n.Address.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// Compile builds the rule tables of node from a snapshot.
func Compile(snap *cluster.Snapshot, node string) *Tables {
	return compile(snap, snap.Seq, node, nil)
}

// tablesEditor builds the next Tables.
type tablesEditor struct {
	node       string
	ids        *pmap.Editor[netip.Addr, identity]
	members    *pmap.Editor[cluster.NamespacedName, []member]
	vips       *pmap.Editor[netip.Addr, cluster.NamespacedName]
	services   *pmap.Editor[cluster.NamespacedName, *servicePolicy]
	localCount int
}

func (e *tablesEditor) done(seq uint64, peers []netip.Addr) *Tables {
	return &Tables{Seq: seq, ids: e.ids.Done(), members: e.members.Done(), vips: e.vips.Done(), services: e.services.Done(), localCount: e.localCount, peers: peers, kernelSeq: seq}
}

// owner reports whether in is the instance the log gives its IP to. The
// controller's claims keep an IP to one instance; a store from before the
// claims may hold two, and then the snapshot's owner, not whichever of
// them a compile met last, is the identity (so patch and compile agree).
func owner(src source, in *cluster.Instance) bool {
	o, ok := src.InstanceByIP(in.IP)
	return ok && o.Value.ID == in.ID
}

// setMembers records the instances of n found in src, all nodes'. It
// returns the services whose identity rows it took an address from (the
// address now belongs to n): their member lists must be derived again.
func (e *tablesEditor) setMembers(src source, n cluster.NamespacedName) []cluster.NamespacedName {
	var ms []member
	var displaced []cluster.NamespacedName
	for _, ie := range src.Instances(n.Namespace, n.Name) {
		in := ie.Value
		if !in.IP.IsValid() || !owner(src, in) {
			continue
		}
		ip := in.IP.Unmap()
		if was, ok := e.ids.Get(ip); ok && was.service != n {
			displaced = append(displaced, was.service)
		}
		local := in.Node == e.node
		e.ids.Set(ip, identity{service: n, local: local})
		ms = append(ms, member{ip: ip, local: local})
		if local {
			e.localCount++
		}
	}
	if len(ms) > 0 {
		e.members.Set(n, ms)
	} else {
		e.members.Delete(n)
	}
	return displaced
}

// dropMembers removes n's identity rows (those still n's) and its list.
func (e *tablesEditor) dropMembers(n cluster.NamespacedName) {
	old, _ := e.members.Get(n)
	for _, m := range old {
		if cur, _ := e.ids.Get(m.ip); cur.service == n {
			e.ids.Delete(m.ip)
		}
		if m.local {
			e.localCount--
		}
	}
	e.members.Delete(n)
}

// compile builds the tables, reusing prev's compiled policies whose records
// did not change: a policy update then costs the one policy it touches, not
// every policy on the node.
func compile(src source, seq uint64, node string, prev *Tables) *Tables {
	e := &tablesEditor{
		node:     node,
		ids:      pmap.NewEditor[netip.Addr, identity](),
		members:  pmap.NewEditor[cluster.NamespacedName, []member](),
		vips:     pmap.NewEditor[netip.Addr, cluster.NamespacedName](),
		services: pmap.NewEditor[cluster.NamespacedName, *servicePolicy](),
	}
	for _, ie := range src.Instances("", "") {
		in := ie.Value
		if !in.IP.IsValid() || !owner(src, in) {
			continue
		}
		n := cluster.NamespacedName{Namespace: in.Namespace, Name: in.Service}
		ip, local := in.IP.Unmap(), in.Node == node
		e.ids.Set(ip, identity{service: n, local: local})
		ms, _ := e.members.Get(n)
		e.members.Set(n, append(ms, member{ip: ip, local: local}))
		if local {
			e.localCount++
		}
	}
	src.RangeServices(func(se cluster.Entry[cluster.ServiceRecord]) bool {
		svc := &se.Value.Spec
		n := cluster.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
		if se.Value.VIP.IsValid() {
			e.vips.Set(se.Value.VIP.Unmap(), n)
		}
		e.setPolicy(src, n, se, prev)
		return true
	})
	return e.done(seq, peerAddrs(src, node))
}

// patch builds the tables of src from prev, the tables of from, when only
// the services in changed (and, if nodesChanged, node records) differ
// between the two: O(change), not O(cluster).
func patch(src, from *cluster.Snapshot, seq uint64, node string, prev *Tables, changed map[cluster.NamespacedName]struct{}, nodesChanged bool) *Tables {
	peers := prev.peers
	if nodesChanged {
		peers = peerAddrs(src, node)
	}
	if len(changed) == 0 && slices.Equal(peers, prev.peers) {
		next := *prev // the kernel plan too: a heartbeat reinstalls nothing
		next.Seq = seq
		return &next
	}
	e := &tablesEditor{node: node, ids: prev.ids.Edit(), members: prev.members.Edit(), vips: prev.vips.Edit(), services: prev.services.Edit(), localCount: prev.localCount}
	for n := range changed {
		e.dropMembers(n)
	}
	// Members after all drops, so an address that moved between two changed
	// services is not removed by the one it left after the other took it.
	done := map[cluster.NamespacedName]bool{}
	work := make([]cluster.NamespacedName, 0, len(changed))
	for n := range changed {
		work = append(work, n)
	}
	for len(work) > 0 {
		n := work[len(work)-1]
		work = work[:len(work)-1]
		if done[n] {
			continue
		}
		done[n] = true
		if _, ok := changed[n]; !ok {
			e.dropMembers(n) // displaced: derive its members again
		}
		work = append(work, e.setMembers(src, n)...)
	}
	for n := range changed {
		if was, ok := from.Service(n); ok && was.Value.VIP.IsValid() {
			if cur, _ := e.vips.Get(was.Value.VIP.Unmap()); cur == n {
				e.vips.Delete(was.Value.VIP.Unmap())
			}
		}
		e.services.Delete(n)
		if se, ok := src.Service(n); ok {
			if se.Value.VIP.IsValid() {
				e.vips.Set(se.Value.VIP.Unmap(), n)
			}
			e.setPolicy(src, n, se, prev)
		}
	}
	return e.done(seq, peers)
}

// setPolicy compiles the policy of service n (record se), reusing prev's
// when neither record changed.
func (e *tablesEditor) setPolicy(src source, n cluster.NamespacedName, se cluster.Entry[cluster.ServiceRecord], prev *Tables) {
	p, ok := src.Policy(n)
	if !ok {
		return
	}
	if prev != nil {
		if sp := prev.service(n); sp != nil && sp.policyRev == p.Rev && sp.serviceRev == se.Rev {
			e.services.Set(n, sp)
			return
		}
	}
	svc := &se.Value.Spec
	sp := &servicePolicy{name: n, label: n.String(), policyRev: p.Rev, serviceRev: se.Rev}
	if p.Value.HasIngress || p.Value.Ingress != nil {
		sp.ingress = compileRules(p.Value.Ingress, svc, true)
	}
	if p.Value.HasEgress || p.Value.Egress != nil {
		sp.egress = compileRules(p.Value.Egress, svc, false)
	}
	if sp.ingress != nil || sp.egress != nil {
		e.services.Set(n, sp)
	}
}

func compileRules(in []cluster.PolicyRule, svc *cluster.Service, ingress bool) *ruleSet {
	rs := &ruleSet{rules: make([]rule, len(in)), byPort: map[portKey]*matcher{}}
	for i, pr := range in {
		peers := pr.From
		if !ingress {
			peers = pr.To
		}
		r := &rs.rules[i]
		for _, p := range peers {
			switch {
			case p.CIDR != "":
				// Validation canonicalized it; an unparsable CIDR (an older
				// record) allows no one rather than everyone.
				if pfx, err := netip.ParsePrefix(p.CIDR); err == nil {
					r.cidrs = append(r.cidrs, pfx.Masked())
				}
			case p.Service != "":
				ns := p.Namespace
				if ns == "" {
					ns = svc.Namespace
				}
				r.peers = append(r.peers, cluster.NamespacedName{Namespace: ns, Name: p.Service})
			}
		}
		if len(pr.Ports) > 0 {
			// A rule whose ports all fail to resolve allows nothing: it
			// must not widen to every port. The empty non-nil slice says so.
			r.ports, r.kernelPorts = []portKey{}, []portKey{}
			for _, ref := range pr.Ports {
				r.resolvePort(ref, svc, ingress)
			}
		}
		targets := []*matcher{}
		if r.ports == nil {
			if rs.any == nil {
				rs.any = newMatcher()
			}
			targets = append(targets, rs.any)
		}
		for _, k := range r.ports {
			m := rs.byPort[k]
			if m == nil {
				m = newMatcher()
				rs.byPort[k] = m
			}
			targets = append(targets, m)
		}
		for _, m := range targets {
			for _, id := range r.peers {
				if cur, ok := m.ids[id]; !ok || int32(i) < cur {
					m.ids[id] = int32(i)
				}
			}
			for _, c := range r.cidrs {
				m.cidrs.insert(c, int32(i))
			}
		}
	}
	if ingress {
		rs.proxied = proxiedPorts(rs.rules, svc)
	}
	return rs
}

// proxiedPorts lists, once each, the instance (target) ports of svc that a
// rule with at least one peer admits: where a source node's proxy may
// connect after its own ingress check allowed a client.
func proxiedPorts(rules []rule, svc *cluster.Service) []portKey {
	var all []portKey
	for _, p := range svc.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = cluster.TCP
		}
		target := p.TargetPort
		if target == 0 {
			target = p.Port
		}
		all = append(all, portKey{proto, uint16(target)})
	}
	seen := map[portKey]bool{}
	var out []portKey
	for i := range rules {
		r := &rules[i]
		if len(r.peers) == 0 && len(r.cidrs) == 0 {
			continue
		}
		ks := r.kernelPorts
		if r.ports == nil {
			ks = all
		}
		for _, k := range ks {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	return out
}

// resolvePort adds what ref selects. Ingress refs name the service's own
// ports (by name, or by number for every protocol that number is declared
// with). Egress refs are destination port numbers, for TCP and UDP alike, as
// the rule has no way to say which.
func (r *rule) resolvePort(ref cluster.PortRef, svc *cluster.Service, ingress bool) {
	if !ingress {
		if ref.Number > 0 && ref.Number <= 65535 {
			for _, proto := range []cluster.Protocol{cluster.TCP, cluster.UDP} {
				k := portKey{proto, uint16(ref.Number)}
				r.ports = append(r.ports, k)
				r.kernelPorts = append(r.kernelPorts, k)
			}
		}
		return
	}
	for _, p := range svc.Ports {
		if (ref.Name != "" && p.Name == ref.Name) || (ref.Name == "" && p.Port == ref.Number) {
			proto := p.Protocol
			if proto == "" {
				proto = cluster.TCP
			}
			target := p.TargetPort
			if target == 0 {
				target = p.Port
			}
			r.ports = append(r.ports, portKey{proto, uint16(p.Port)})
			r.kernelPorts = append(r.kernelPorts, portKey{proto, uint16(target)})
		}
	}
}

// decide runs a direction's rules; nil means the direction has no policy.
func (rs *ruleSet) decide(sp *servicePolicy, id cluster.NamespacedName, known bool, addr netip.Addr, port uint16, proto cluster.Protocol) Verdict {
	if rs == nil {
		return Verdict{Allowed: true, Rule: -1, Reason: ReasonNoPolicy}
	}
	best := rs.any.match(id, known, addr)
	if len(rs.byPort) > 0 {
		best = min(best, rs.byPort[portKey{proto, port}].match(id, known, addr))
	}
	if best == noRule {
		return Verdict{Service: sp.name, Policy: sp.label, Rule: -1, Reason: ReasonDefaultDeny}
	}
	return Verdict{Allowed: true, Service: sp.name, Policy: sp.label, Rule: int(best), Reason: ReasonRuleMatch}
}

// Ingress decides a connection from src to service dst on dst's service
// (VIP) port. src has a service identity if it is an instance on any node;
// CIDR peers match any src.
func (t *Tables) Ingress(src netip.Addr, dst cluster.NamespacedName, port uint16, proto cluster.Protocol) Verdict {
	sp := t.service(dst)
	if sp == nil {
		return Verdict{Allowed: true, Rule: -1, Reason: ReasonNoPolicy}
	}
	src = src.Unmap()
	id, known := t.ids.Get(src)
	return sp.ingress.decide(sp, id.service, known, src, port, proto)
}

// IngressFromService decides as if an instance of src (on any node)
// connected to dst: what `rune policy check --from <svc.ns>` asks, where
// there is no address for CIDR peers to match.
func (t *Tables) IngressFromService(src, dst cluster.NamespacedName, port uint16, proto cluster.Protocol) Verdict {
	sp := t.service(dst)
	if sp == nil {
		return Verdict{Allowed: true, Rule: -1, Reason: ReasonNoPolicy}
	}
	return sp.ingress.decide(sp, src, true, netip.Addr{}, port, proto)
}

// Edge decides a connection that the edge ingress forwards from an outside
// client to an exposed service. The edge hop carries no service identity,
// so only CIDR peers covering the client's address can allow it (see the
// package documentation).
func (t *Tables) Edge(client netip.Addr, dst cluster.NamespacedName, port uint16) Verdict {
	sp := t.service(dst)
	if sp == nil {
		return Verdict{Allowed: true, Rule: -1, Reason: ReasonNoPolicy}
	}
	return sp.ingress.decide(sp, cluster.NamespacedName{}, false, client.Unmap(), port, cluster.TCP)
}

// Egress decides a connection from the local instance src to dst, a VIP or
// any other address, on destination port port. The destination is a
// service if dst is its VIP or one of its instances, on any node.
func (t *Tables) Egress(src, dst netip.Addr, port uint16, proto cluster.Protocol) Verdict {
	from, ok := t.localSource(src)
	if !ok {
		// Not an instance of this node: its own node judges its egress.
		return Verdict{Allowed: true, Rule: -1, Reason: ReasonNoPolicy}
	}
	sp := t.service(from)
	if sp == nil {
		return Verdict{Allowed: true, Rule: -1, Reason: ReasonNoPolicy}
	}
	dst = dst.Unmap()
	id, known := t.vips.Get(dst)
	if !known {
		var to identity
		to, known = t.ids.Get(dst)
		id = to.service
	}
	return sp.egress.decide(sp, id, known, dst, port, proto)
}

// localSource is the service of src if src is an instance of this node: only
// those originate traffic here, so only their egress is this node's to judge.
func (t *Tables) localSource(src netip.Addr) (cluster.NamespacedName, bool) {
	id, ok := t.ids.Get(src.Unmap())
	return id.service, ok && id.local
}

// guards reports whether inbound (or outbound) traffic of n is under policy:
// the services that fail closed when the view is stale.
func (t *Tables) guards(n cluster.NamespacedName, ingress bool) (*servicePolicy, bool) {
	sp := t.service(n)
	if sp == nil {
		return nil, false
	}
	if ingress {
		return sp, sp.ingress != nil
	}
	return sp, sp.egress != nil
}

// LocalInstances is the number of instance rows of this node.
func (t *Tables) LocalInstances() int { return t.localCount }

// Identities is the number of instance addresses, of every node, that
// carry a service identity.
func (t *Tables) Identities() int { return t.ids.Len() }

// EgressFromService decides as if an instance of src connected
// to dst's VIP dstAddr: the egress half of `rune policy check --from
// <svc.ns>`, where the source has no address of its own.
func (t *Tables) EgressFromService(src, dst cluster.NamespacedName, dstAddr netip.Addr, port uint16, proto cluster.Protocol) Verdict {
	sp := t.service(src)
	if sp == nil {
		return Verdict{Allowed: true, Rule: -1, Reason: ReasonNoPolicy}
	}
	return sp.egress.decide(sp, dst, true, dstAddr.Unmap(), port, proto)
}
