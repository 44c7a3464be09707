package policy

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/nftconn"
)

// NFTConfig names what the kernel enforcer owns.
type NFTConfig struct {
	// Table (family inet) is replaced atomically on every Sync and removed
	// on Close. Default "rune_policy".
	Table string
	// NetNS is a network namespace fd to program instead of the current one
	// (tests and benchmarks); 0 means the current namespace.
	NetNS int
}

// NFT drops in the kernel what the policy denies on the forward path:
// container to container (routed, or bridged with br_netfilter), other
// nodes to containers, and containers to the outside. Host-originated
// traffic, the proxy's and the edge ingress's included, is judged in user
// space and not filtered here. The table, for N policy-bearing services:
//
//	table inet rune_policy {
//	  counter drop/ingress/<ns>/<svc>                      # one per chain, read by Drops
//	  set allow/ingress/<ns>/<svc> { type ipv4_addr . inet_proto . inet_service; flags interval }
//	  chain ingress/<ns>/<svc> {                           # egress/...: daddr instead of saddr
//	    ip saddr . meta l4proto . th dport @allow/ingress/<ns>/<svc> return
//	    counter name drop/ingress/<ns>/<svc> drop }
//	  map ingress_guard { type ipv4_addr : verdict }       # local instance IP : jump ingress/<ns>/<svc>
//	  map egress_guard  { type ipv4_addr : verdict }
//	  chain forward { type filter hook forward priority filter; policy accept;
//	    ct state established,related accept               # only new connections are judged
//	    meta nfproto ipv4 ip saddr vmap @egress_guard
//	    meta nfproto ipv4 ip daddr vmap @ingress_guard }
//	}
//
// Dispatch is one map lookup per direction and the allow check one
// set lookup, however many instances, rules and CIDRs there are.
type NFT struct {
	cfg   NFTConfig
	conn  *nftables.Conn
	table *nftables.Table // nil until installed
	// counters maps counter names of the installed table to their service;
	// pending holds counts read just before a replace reset them.
	counters map[string]cluster.NamespacedName
	pending  map[cluster.NamespacedName]uint64
	// ids are the IPv4 identities the installed table was planned with
	// (nil before the first install): an address that loses or changes its
	// identity has its conntrack flows forgotten (forgetFlows).
	ids map[netip.Addr]cluster.NamespacedName
}

// NewNFT opens a netlink connection; nothing is programmed until Sync.
func NewNFT(cfg NFTConfig) (*NFT, error) {
	if cfg.Table == "" {
		cfg.Table = "rune_policy"
	}
	c, err := nftconn.Open(cfg.NetNS)
	if err != nil {
		return nil, fmt.Errorf("nftables: open netlink: %w", err)
	}
	return &NFT{cfg: cfg, conn: c, pending: map[cluster.NamespacedName]uint64{}}, nil
}

// Sync replaces the table with the plan of t in one transaction, so no
// packet sees a half-installed policy.
func (n *NFT) Sync(t *Tables, stale bool) error {
	if n.table != nil {
		// Replacing the table resets its counters: bank them first.
		if err := n.readCounters(n.pending); err != nil {
			return err
		}
	}
	p := planKernel(t, stale)
	tbl := &nftables.Table{Name: n.cfg.Table, Family: nftables.TableFamilyINet}
	// add; delete; add replaces a leftover table (a crashed runed's)
	// atomically and works whether or not it exists.
	n.conn.AddTable(tbl)
	n.conn.DelTable(tbl)
	n.conn.AddTable(tbl)

	counters := map[string]cluster.NamespacedName{}
	guards := map[bool][]nftables.SetElement{}
	for _, c := range p.chains {
		// Names say which policy a chain enforces, for an operator reading
		// `nft list ruleset`; namespaces and names are DNS labels, which
		// nft accepts in identifiers.
		dir := "ingress"
		if !c.ingress {
			dir = "egress"
		}
		name := dir + "/" + c.service.String()
		counter := "drop/" + name
		counters[counter] = c.service
		n.conn.AddObj(&nftables.CounterObj{Table: tbl, Name: counter})
		ch := n.conn.AddChain(&nftables.Chain{Name: name, Table: tbl})
		set := &nftables.Set{
			Table: tbl, Name: "allow/" + name, Interval: true, Concatenation: true,
			KeyType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService),
		}
		elems := make([]nftables.SetElement, len(c.allow))
		for j, a := range c.allow {
			elems[j] = nftables.SetElement{Key: allowKey(a.lo, a.protoLo, a.portLo), KeyEnd: allowKey(a.hi, a.protoHi, a.portHi)}
		}
		if err := n.addSet(set, elems); err != nil {
			return fmt.Errorf("nftables: set %s: %w", set.Name, err)
		}
		peer := uint32(12) // ingress: the source address decides
		if !c.ingress {
			peer = 16
		}
		n.conn.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
			// Only IPv4 jumps here; the check lets nft print "ip saddr".
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: peer, Len: 4},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 9},
			&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
			&expr.Verdict{Kind: expr.VerdictReturn},
		}})
		n.conn.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
			&expr.Objref{Type: unix.NFT_OBJECT_COUNTER, Name: counter},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
		for _, ip := range c.guarded {
			a := ip.As4()
			guards[c.ingress] = append(guards[c.ingress], nftables.SetElement{
				Key: a[:], VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: ch.Name},
			})
		}
	}
	base := n.conn.AddChain(&nftables.Chain{
		Name: "forward", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter,
	})
	n.conn.AddRule(&nftables.Rule{Table: tbl, Chain: base, Exprs: []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}})
	for _, g := range []struct {
		name    string
		ingress bool
		offset  uint32
	}{{"egress_guard", false, 12}, {"ingress_guard", true, 16}} {
		m := &nftables.Set{Table: tbl, Name: g.name, IsMap: true, KeyType: nftables.TypeIPAddr, DataType: nftables.TypeVerdict}
		if err := n.addSet(m, guards[g.ingress]); err != nil {
			return fmt.Errorf("nftables: map %s: %w", g.name, err)
		}
		n.conn.AddRule(&nftables.Rule{Table: tbl, Chain: base, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: g.offset, Len: 4},
			&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
		}})
	}
	if err := n.conn.Flush(); err != nil {
		n.table = nil // unknown state: the next Sync must not trust it
		return fmt.Errorf("nftables: install table inet %s (%d chains): %w", n.cfg.Table, len(p.chains), err)
	}
	n.table, n.counters = tbl, counters
	return n.revoke(t)
}

// revoke forgets the flows of addresses whose identity t no longer gives
// them, now that the table judging their next packets is in place. On an
// error the old identities stay, so the Engine's retry tries again.
func (n *NFT) revoke(t *Tables) error {
	ids := map[netip.Addr]cluster.NamespacedName{}
	t.ids.Range(func(a netip.Addr, id identity) bool {
		if a.Is4() {
			ids[a] = id.service
		}
		return true
	})
	revoked := map[netip.Addr]bool{}
	for a, svc := range n.ids {
		if cur, ok := ids[a]; !ok || cur != svc {
			revoked[a] = true
		}
	}
	if _, err := forgetFlows(n.cfg.NetNS, revoked); err != nil {
		return fmt.Errorf("nftables: table installed, but the flows of %d revoked instance addresses remain: %w", len(revoked), err)
	}
	n.ids = ids
	return nil
}

// addSet queues a set and its elements, in messages small enough to encode.
func (n *NFT) addSet(s *nftables.Set, elems []nftables.SetElement) error {
	if err := n.conn.AddSet(s, nil); err != nil {
		return err
	}
	return nftconn.InChunks(n.conn.SetAddElements, s, elems)
}

// allowKey encodes address . protocol . port; concatenated keys pad each
// field to a 4-byte register.
func allowKey(addr uint32, proto uint8, port uint16) []byte {
	k := make([]byte, 12)
	binary.BigEndian.PutUint32(k, addr)
	k[4] = proto
	binary.BigEndian.PutUint16(k[8:], port)
	return k
}

// readCounters adds the drop counters to acc and zeroes them, in one
// request, so no packet is counted twice or lost between read and reset.
func (n *NFT) readCounters(acc map[cluster.NamespacedName]uint64) error {
	objs, err := n.conn.GetObjReset(&nftables.CounterObj{Table: n.table})
	if err != nil {
		return fmt.Errorf("nftables: read counters of inet %s: %w", n.cfg.Table, err)
	}
	for _, o := range objs {
		c, ok := o.(*nftables.CounterObj)
		if !ok || c.Packets == 0 {
			continue
		}
		if svc, ok := n.counters[c.Name]; ok {
			acc[svc] += c.Packets
		}
	}
	return nil
}

// Drops returns the packets dropped per service since the previous call.
func (n *NFT) Drops() ([]KernelDrop, error) {
	if n.table != nil {
		if err := n.readCounters(n.pending); err != nil {
			return nil, err
		}
	}
	out := make([]KernelDrop, 0, len(n.pending))
	for svc, pkts := range n.pending {
		out = append(out, KernelDrop{Service: svc, Packets: pkts})
	}
	clear(n.pending)
	return out, nil
}

// Close releases the netlink connection and leaves the table in place: a
// stopped runed keeps enforcing the last policy it installed (as the data
// plane's guard table keeps the cluster CIDR fenced off), and the next runed
// replaces it atomically once its View has loaded. Without it, direct
// container-IP traffic to a policy-bearing service would be open from the
// stop until the next start's View had loaded. `nft delete table inet
// rune_policy` removes it for good.
func (n *NFT) Close() error {
	n.conn.CloseLasting()
	n.table = nil
	return nil
}
