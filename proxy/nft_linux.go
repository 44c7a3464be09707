package proxy

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/nftconn"
)

// NFTConfig names what the interceptor owns.
type NFTConfig struct {
	// Table is the interception table (family ip): removed on Close, replaced
	// atomically on start. Default "rune".
	Table string
	// GuardTable (family ip) rejects everything to the cluster CIDR that the
	// interception did not redirect: a VIP or port no service has, and all of
	// it while runed is down. It deliberately outlives runed (Close leaves it)
	// so the CIDR never leaks to a default route; RemoveGuard takes it away
	// for an uninstall. Default "rune_guard".
	GuardTable string
	// NetNS is a network namespace fd to program instead of the current one
	// (benchmarks and tests); 0 means the current namespace.
	NetNS int
}

func (c *NFTConfig) setDefaults() {
	if c.Table == "" {
		c.Table = "rune"
	}
	if c.GuardTable == "" {
		c.GuardTable = "rune_guard"
	}
}

// NFT steers VIP traffic into the proxy, or in kernel forwarding mode
// straight to an endpoint, with nftables:
//
//	table ip rune {
//	  map svc_tcp { type ipv4_addr . inet_service : inet_service }   # VIP . port : proxy port
//	  map svc_udp { ... }
//	  map svc_tcp_ep_3 { type ipv4_addr . inet_service . mark : ipv4_addr . inet_service }
//	                     # kernel forwarding: VIP . port . i : endpoint i of the VIP . ports
//	                     # with 3 endpoints; one map per endpoint count
//	  set alive { type mark; flags timeout }     # one element, refreshed by Heartbeat
//	  chain kernel { dnat ip to ip daddr . th dport . numgen random mod 3 map @svc_tcp_ep_3
//	                 ... }                      # one rule per count; a miss tries the next
//	  chain prerouting { type nat hook prerouting priority dstnat   # from containers
//	    ip daddr <CIDR> meta l4proto tcp ip saddr != 127.0.0.0/8 1 @alive jump kernel
//	    meta l4proto tcp redirect to ip daddr . tcp dport map @svc_tcp
//	    meta l4proto udp redirect to ip daddr . udp dport map @svc_udp }
//	  chain output { type nat hook output priority -100 ... }       # from the host
//	  chain postrouting { type nat hook postrouting priority srcnat - 1   # kernel-forwarded, from
//	    ct original ip daddr <CIDR> ip saddr != <containers> masquerade   # from outside the cluster
//	    ct original ip daddr <CIDR> ip daddr != <containers> masquerade   # to an endpoint outside
//	    ct original ip daddr <CIDR> ip saddr <local> ip daddr <local> masquerade   # or hairpin
//	    ip saddr <containers> ip daddr <containers> snat ip to ip saddr }   # keep (keepSourceRule)
//	}
//	table ip rune_guard {   # priority dstnat+10, after the redirect
//	  chain prerouting/output { ip daddr <CIDR> meta l4proto tcp reject with tcp reset
//	                            ip daddr <CIDR> reject }
//	}
//
// plus a route <CIDR> dev lo src 127.0.0.1, so host processes can connect to VIPs without
// a default route. Dispatch is two hash lookups whatever the number of
// services, and a change touches only the map elements that differ. The
// pick rules are per endpoint count, not per service: a commit revalidates
// every chain a verdict map can reach, so thousands of per-service chains
// would make each change cost milliseconds per thousand services. For the
// same reason no map holds verdicts: adding a goto element to a verdict map
// makes the kernel revalidate every element of it on commit (46 ms per
// change with 100,000 services); a map per endpoint count, and a rule per
// map, cost one lookup per count a new connection tries.
type NFT struct {
	cfg  NFTConfig
	conn *nftables.Conn

	table *nftables.Table
	maps  map[cluster.Protocol]*nftables.Set
	kern  *nftables.Chain
	alive *nftables.Set
	picks map[int]*nftables.Set // endpoint count → its endpoint map (with its rule)
	cidr  netip.Prefix
	// scope is what the next install masquerades; scoped what the
	// installed postrouting chain does.
	scope, scoped SourceScope
	// installed mirrors what is in the kernel; nil forces a full reinstall
	// (first sync, or after a failed transaction left it unknown).
	installed map[redirectKey]Redirect
}

type redirectKey struct {
	proto cluster.Protocol
	vip   netip.AddrPort
}

// NewNFT opens a netlink connection; nothing is programmed until Sync.
func NewNFT(cfg NFTConfig) (*NFT, error) {
	cfg.setDefaults()
	c, err := nftconn.Open(cfg.NetNS)
	if err != nil {
		return nil, fmt.Errorf("nftables: open netlink: %w", err)
	}
	return &NFT{cfg: cfg, conn: c}, nil
}

// Sync makes the kernel steer exactly rs. The first call (and any after a
// CIDR change or a failure) replaces the tables in one transaction; later
// calls change only the elements and forwarding chains that differ.
func (n *NFT) Sync(cidr netip.Prefix, rs []Redirect) error {
	return n.timed(func() error { return n.sync(cidr, rs) })
}

// timed runs one sync or patch for the metrics. After a failure what the
// kernel holds is unknown, so the next Sync reinstalls.
func (n *NFT) timed(f func() error) error {
	start := time.Now()
	err := f()
	nftSyncDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		nftSyncErrors.Inc()
		n.installed = nil
	}
	return err
}

func (n *NFT) sync(cidr netip.Prefix, rs []Redirect) error {
	want := make(map[redirectKey]Redirect, len(rs))
	for _, r := range rs {
		if r.Endpoints != nil && r.Protocol != cluster.TCP {
			return fmt.Errorf("nftables: %s %s: kernel forwarding is for TCP only", r.Protocol, r.VIP)
		}
		want[redirectKey{r.Protocol, r.VIP}] = r
	}
	if n.installed == nil || cidr != n.cidr || n.scope != n.scoped {
		if err := n.install(cidr, want); err != nil {
			return err
		}
		return ensureRoute(cidr, n.cfg.NetNS)
	}
	return n.update(want)
}

func (n *NFT) install(cidr netip.Prefix, want map[redirectKey]Redirect) error {
	if !cidr.IsValid() || !cidr.Addr().Is4() {
		return fmt.Errorf("nftables: cluster CIDR %v is not an IPv4 prefix", cidr)
	}
	guard := replaceTable(n.conn, n.cfg.GuardTable)
	for _, hook := range []*nftables.ChainHook{nftables.ChainHookPrerouting, nftables.ChainHookOutput} {
		ch := n.conn.AddChain(&nftables.Chain{
			Name: hookName(hook), Table: guard, Type: nftables.ChainTypeFilter,
			Hooknum: hook, Priority: nftables.ChainPriorityRef(*nftables.ChainPriorityNATDest + 10),
		})
		n.conn.AddRule(&nftables.Rule{Table: guard, Chain: ch, Exprs: guardExprs(cidr, true)})
		n.conn.AddRule(&nftables.Rule{Table: guard, Chain: ch, Exprs: guardExprs(cidr, false)})
	}

	t := replaceTable(n.conn, n.cfg.Table)
	vipPort := nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
	n.table = t
	n.maps = map[cluster.Protocol]*nftables.Set{}
	n.alive = &nftables.Set{Table: t, Name: "alive", KeyType: nftables.TypeMark, HasTimeout: true}
	n.picks = map[int]*nftables.Set{}
	n.kern = n.conn.AddChain(&nftables.Chain{Name: "kernel", Table: t})
	if err := n.conn.AddSet(n.alive, nil); err != nil {
		return fmt.Errorf("nftables: set %s: %w", n.alive.Name, err)
	}
	elems := map[*nftables.Set][]nftables.SetElement{}
	for _, r := range want {
		if r.Endpoints != nil {
			s, err := n.ensurePick(len(r.Endpoints))
			if err != nil {
				return err
			}
			elems[s] = append(elems[s], epElements(r)...)
		}
	}
	for s, elems := range elems {
		if err := nftconn.InChunks(n.conn.SetAddElements, s, elems); err != nil {
			return fmt.Errorf("nftables: map %s: %w", s.Name, err)
		}
	}
	for _, proto := range []cluster.Protocol{cluster.TCP, cluster.UDP} {
		s := &nftables.Set{Table: t, Name: "svc_" + string(proto), IsMap: true, Concatenation: true, KeyType: vipPort, DataType: nftables.TypeInetService}
		var elems []nftables.SetElement
		for k, r := range want {
			if k.proto == proto && r.Port != 0 {
				elems = append(elems, element(r))
			}
		}
		if err := n.conn.AddSet(s, nil); err != nil {
			return fmt.Errorf("nftables: map %s: %w", s.Name, err)
		}
		if err := nftconn.InChunks(n.conn.SetAddElements, s, elems); err != nil {
			return fmt.Errorf("nftables: map %s: %w", s.Name, err)
		}
		n.maps[proto] = s
	}
	for _, hook := range []*nftables.ChainHook{nftables.ChainHookPrerouting, nftables.ChainHookOutput} {
		ch := n.conn.AddChain(&nftables.Chain{
			Name: hookName(hook), Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: hook, Priority: nftables.ChainPriorityNATDest,
		})
		n.conn.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: n.dispatchExprs(cidr)})
		for _, proto := range []cluster.Protocol{cluster.TCP, cluster.UDP} {
			n.conn.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: redirectExprs(proto, n.maps[proto])})
		}
	}
	post := n.conn.AddChain(&nftables.Chain{
		Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		// Ahead of the other source-NAT chains (Docker's masquerade of its
		// bridges' subnets is one): the first NAT binding made for a
		// connection is the one that holds (see keepSourceRule).
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityRef(*nftables.ChainPriorityNATSource - 1),
	})
	for _, e := range masqueradeRules(cidr, n.scope) {
		n.conn.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: e})
	}
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("nftables: install tables %s and %s for %s: %w", n.cfg.Table, n.cfg.GuardTable, cidr, err)
	}
	n.cidr, n.installed, n.scoped = cidr, want, n.scope
	return nil
}

// replaceTable queues "add table; delete table; add table": in one
// transaction that replaces a leftover table (a crashed runed's) atomically,
// and works whether or not it exists.
func replaceTable(c *nftables.Conn, name string) *nftables.Table {
	t := &nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}
	c.AddTable(t)
	c.DelTable(t)
	return c.AddTable(t)
}

func (n *NFT) update(want map[redirectKey]Redirect) error {
	var d nftDiff
	for k, old := range n.installed {
		d.key(n, k, old, want[k])
	}
	for k, r := range want {
		if _, ok := n.installed[k]; !ok {
			d.key(n, k, Redirect{}, r)
		}
	}
	if err := n.commit(&d, false); err != nil {
		return err
	}
	n.installed = want
	return nil
}

// Patch changes only the redirects of rs, each replacing whatever its
// protocol and VIP had (Port 0: none any more), in one transaction; every
// other element stays. It needs a table Sync installed.
func (n *NFT) Patch(rs []Redirect, alive time.Duration) error {
	return n.timed(func() error { return n.patch(rs, alive) })
}

func (n *NFT) patch(rs []Redirect, alive time.Duration) error {
	if n.installed == nil {
		return fmt.Errorf("nftables: patch before the table is installed")
	}
	var d nftDiff
	for _, r := range rs {
		if r.Endpoints != nil && r.Protocol != cluster.TCP {
			return fmt.Errorf("nftables: %s %s: kernel forwarding is for TCP only", r.Protocol, r.VIP)
		}
		k := redirectKey{r.Protocol, r.VIP}
		d.key(n, k, n.installed[k], r)
	}
	if d.err != nil {
		return d.err // before queueing anything: nothing is sent
	}
	if alive > 0 {
		if err := n.queueHeartbeat(alive); err != nil {
			return err
		}
	}
	if err := n.commit(&d, alive > 0); err != nil {
		return err
	}
	for _, r := range rs {
		k := redirectKey{r.Protocol, r.VIP}
		if r.Port == 0 && r.Endpoints == nil {
			delete(n.installed, k)
		} else {
			n.installed[k] = r
		}
	}
	return nil
}

// nftDiff collects the element deletes and adds that turn one set of
// redirects into another.
type nftDiff struct {
	del, add map[*nftables.Set][]nftables.SetElement
	err      error // the first failure to queue a new endpoint count
}

func (d *nftDiff) queue(m *map[*nftables.Set][]nftables.SetElement, s *nftables.Set, elems ...nftables.SetElement) {
	if *m == nil {
		*m = map[*nftables.Set][]nftables.SetElement{}
	}
	(*m)[s] = append((*m)[s], elems...)
}

// key queues what changes for k from old to r; a zero Redirect is none.
func (d *nftDiff) key(n *NFT, k redirectKey, old, r Redirect) {
	if old.Port != r.Port {
		if old.Port != 0 {
			d.queue(&d.del, n.maps[k.proto], element(old))
		}
		if r.Port != 0 {
			d.queue(&d.add, n.maps[k.proto], element(r))
		}
	}
	if slices.Equal(old.Endpoints, r.Endpoints) && (old.Endpoints == nil) == (r.Endpoints == nil) {
		return
	}
	if old.Endpoints != nil {
		d.queue(&d.del, n.picks[len(old.Endpoints)], epElements(old)...)
	}
	if r.Endpoints != nil {
		s, err := n.ensurePick(len(r.Endpoints))
		if err != nil {
			d.err = cmp.Or(d.err, err)
			return
		}
		d.queue(&d.add, s, epElements(r)...)
	}
}

// commit sends d in one transaction. Deletes go first: a changed element
// is deleted and re-added, and no packet sees it missing.
func (n *NFT) commit(d *nftDiff, queued bool) error {
	if d.err != nil {
		return d.err
	}
	if len(d.del)+len(d.add) == 0 && !queued {
		return nil
	}
	for s, elems := range d.del {
		if err := nftconn.InChunks(n.conn.SetDeleteElements, s, elems); err != nil {
			return err
		}
	}
	for s, elems := range d.add {
		if err := nftconn.InChunks(n.conn.SetAddElements, s, elems); err != nil {
			return err
		}
	}
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("nftables: update table %s: %w", n.cfg.Table, err)
	}
	return nil
}

// Heartbeat keeps kernel forwarding on for ttl more. The interception
// stops forwarding new connections to endpoints by itself once the
// heartbeats stop (runed killed, or its View stuck), so a node never keeps
// sending traffic on a picture of the cluster older than the stale budget;
// the guard then refuses them.
func (n *NFT) Heartbeat(ttl time.Duration) error {
	if err := n.queueHeartbeat(ttl); err != nil {
		return err
	}
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("nftables: refresh set %s of table %s: %w", n.alive.Name, n.cfg.Table, err)
	}
	return nil
}

// queueHeartbeat adds the refresh of the alive set to the transaction
// being built.
func (n *NFT) queueHeartbeat(ttl time.Duration) error {
	if n.alive == nil || n.installed == nil {
		return fmt.Errorf("nftables: heartbeat before the table is installed")
	}
	n.conn.FlushSet(n.alive)
	return n.conn.SetAddElements(n.alive, []nftables.SetElement{{Key: aliveKey, Timeout: max(ttl, time.Millisecond)}})
}

// aliveKey is the one element of the alive set.
var aliveKey = binary.BigEndian.AppendUint32(nil, 1)

// ensurePick queues, once per endpoint count, the map of the endpoints of
// the VIP . ports with count endpoints and the kernel chain's rule that
// picks one of them (dnat to ip daddr . tcp dport . numgen random mod count
// map @svc_tcp_ep_<count>; a VIP . port with another count misses and goes
// on to the next rule), and returns the map. They stay until the next
// reinstall, used or not: there are only as many as distinct counts. The
// maps are per count, not one for all, because the kernel checks every
// element of a map when a rule starts looking it up (nf_tables_bind_set):
// a new count's rule on one shared map cost 50–130 ms with 100,000
// kernel-forwarded services installed, and is free on a map of its own,
// which is still empty when the rule binds it.
func (n *NFT) ensurePick(count int) (*nftables.Set, error) {
	if s := n.picks[count]; s != nil {
		return s, nil
	}
	s := &nftables.Set{
		Table: n.table, Name: fmt.Sprintf("svc_tcp_ep_%d", count), IsMap: true, Concatenation: true,
		KeyType:  nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService, nftables.TypeMark),
		DataType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService),
	}
	if err := n.conn.AddSet(s, nil); err != nil {
		return nil, fmt.Errorf("nftables: map %s: %w", s.Name, err)
	}
	n.picks[count] = s
	n.conn.AddRule(&nftables.Rule{Table: n.table, Chain: n.kern, Exprs: []expr.Any{
		ipDaddr(),
		&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Numgen{Register: 10, Modulus: uint32(count), Type: unix.NFT_NG_RANDOM},
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: s.Name, SetID: s.ID},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 9, Specified: true},
	}})
	return s, nil
}

// epElements encodes VIP . port . i : endpoint i. The index is typed a
// mark because, like numgen's output, marks are in host order (and nft can
// list it, which a bare integer field in a concatenation defeats).
func epElements(r Redirect) []nftables.SetElement {
	out := make([]nftables.SetElement, len(r.Endpoints))
	key := vipKey(r.VIP)
	for i, ep := range r.Endpoints {
		out[i] = nftables.SetElement{Key: binary.NativeEndian.AppendUint32(slices.Clone(key), uint32(i)), Val: vipKey(ep)}
	}
	return out
}

// dispatchExprs: ip daddr <CIDR>, meta l4proto tcp, ip saddr !=
// 127.0.0.0/8, the alive element present, then jump kernel (the VIP . port
// looked up in the endpoint map of each endpoint count). A miss returns to the
// redirect rules. The CIDR test comes first so that a node's other new
// connections (to the internet, say) cost one compare, not set lookups. Host processes connecting from
// 127.0.0.1 (the source the CIDR route pins) go to the proxy: a packet from
// a loopback address may not be routed out of another interface after DNAT.
func (n *NFT) dispatchExprs(cidr netip.Prefix) []expr.Any {
	loopback := netip.MustParsePrefix("127.0.0.0/8")
	e := append([]expr.Any{ipDaddr()}, inCIDR(cidr)...)
	return append(e,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		ipSaddr(),
		maskExpr(loopback), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: prefixAddr(loopback)},
		&expr.Immediate{Register: 1, Data: aliveKey},
		&expr.Lookup{SourceRegister: 1, SetName: n.alive.Name, SetID: n.alive.ID},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: n.kern.Name},
	)
}

// KeepSources sets which kernel-forwarded connections keep their source
// (see SourceScope); the next Sync reinstalls the table if it changed.
func (n *NFT) KeepSources(sc SourceScope) { n.scope = sc }

// masqueradeRules: ct original ip daddr <CIDR> masquerade, narrowed by sc to
// a source or an endpoint outside the container CIDR, and hairpins on the
// local subnet. A
// masqueraded connection's replies come back through this node to be
// un-DNATed; inside the cluster they do anyway (see SourceScope), and the
// endpoint then sees the client's real address. Policy is not affected:
// the forward filter sees the client's address before postrouting rewrites
// it. Source ports are kept where free, not randomized (kube-proxy's
// --random-fully): a client that reuses a port then meets the TIME_WAIT its
// own earlier connection left at the endpoint, whose timestamps it passes;
// a random port meets some other connection's, and PAWS drops the SYN for
// a second (measured: new connections/s fell from 21k to 6k).
func masqueradeRules(cidr netip.Prefix, sc SourceScope) [][]expr.Any {
	toVIP := append([]expr.Any{&expr.Ct{Register: 1, Key: expr.CtKeyDST, Direction: 0}}, inCIDR(cidr)...)
	if !sc.Containers.IsValid() {
		return [][]expr.Any{append(toVIP, &expr.Masq{})}
	}
	saddr, daddr := ipSaddr(), ipDaddr()
	outside := func(addr expr.Any) []expr.Any {
		return append(slices.Clone(toVIP), addr, maskExpr(sc.Containers), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: prefixAddr(sc.Containers)}, &expr.Masq{})
	}
	rules := [][]expr.Any{outside(saddr), outside(daddr)}
	if sc.Local.IsValid() {
		hairpin := append(slices.Clone(toVIP), saddr)
		hairpin = append(append(hairpin, inCIDR(sc.Local)...), daddr)
		hairpin = append(append(hairpin, inCIDR(sc.Local)...), &expr.Masq{})
		rules = append(rules, hairpin)
	}
	return append(rules, keepSourceRule(sc.Containers))
}

// keepSourceRule: ip saddr <containers> ip daddr <containers> snat to ip
// saddr. Container to container across nodes, direct or kernel-forwarded,
// keeps its source, also where another chain would masquerade it: Docker
// masquerades everything leaving its bridge for another host (`-s SUBNET !
// -o BRIDGE -j MASQUERADE`), which would hide the client from the
// destination node's identity checks. netfilter runs a hook's NAT chains in
// priority order only until one binds the connection, so this null binding,
// in a chain ahead of Docker's, ends the search with the source unchanged.
func keepSourceRule(containers netip.Prefix) []expr.Any {
	e := append([]expr.Any{ipSaddr()}, inCIDR(containers)...)
	e = append(append(e, ipDaddr()), inCIDR(containers)...)
	return append(e, ipSaddr(), &expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1})
}

// Close removes the interception table. The guard stays (see NFTConfig).
func (n *NFT) Close() error {
	defer n.conn.CloseLasting()
	if n.table == nil {
		return nil
	}
	n.conn.DelTable(n.table)
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("nftables: delete table ip %s: %w", n.cfg.Table, err)
	}
	return nil
}

// RemoveGuard deletes the guard table and the CIDR route: for uninstalling
// runed, after which the cluster CIDR is no longer fenced off.
func RemoveGuard(cfg NFTConfig, cidr netip.Prefix) error {
	cfg.setDefaults()
	n, err := NewNFT(cfg)
	if err != nil {
		return err
	}
	defer n.conn.CloseLasting()
	replaceTable(n.conn, cfg.GuardTable)
	n.conn.DelTable(&nftables.Table{Name: cfg.GuardTable, Family: nftables.TableFamilyIPv4})
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("nftables: delete table ip %s: %w", cfg.GuardTable, err)
	}
	return removeRoute(cidr, cfg.NetNS)
}

func hookName(h *nftables.ChainHook) string {
	if *h == *nftables.ChainHookOutput {
		return "output"
	}
	return "prerouting"
}

// element encodes VIP . port : proxy port.
func element(r Redirect) nftables.SetElement {
	return nftables.SetElement{Key: vipKey(r.VIP), Val: binary.BigEndian.AppendUint16(nil, r.Port)}
}

// vipKey encodes VIP . port; concatenated keys pad each field to a 4-byte
// register.
func vipKey(vip netip.AddrPort) []byte {
	key := make([]byte, 8)
	a := vip.Addr().As4()
	copy(key, a[:])
	binary.BigEndian.PutUint16(key[4:], vip.Port())
	return key
}

// redirectExprs: meta l4proto P redirect to ip daddr . P dport map @svc_P.
func redirectExprs(proto cluster.Protocol, m *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{l4proto(proto)}},
		ipDaddr(),
		&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
		&expr.Redir{RegisterProtoMin: 1},
	}
}

// guardExprs: ip daddr CIDR [meta l4proto tcp] counter reject. TCP gets a
// reset and everything else ICMP port unreachable, so clients fail at once
// (connection refused) instead of hanging, and pings to a VIP get no echo.
func guardExprs(cidr netip.Prefix, tcp bool) []expr.Any {
	e := append([]expr.Any{ipDaddr()}, inCIDR(cidr)...)
	if tcp {
		return append(e,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Counter{},
			&expr.Reject{Type: unix.NFT_REJECT_TCP_RST})
	}
	return append(e, &expr.Counter{}, &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 3})
}

// inCIDR matches when register 1 holds an address inside cidr.
// ipSaddr and ipDaddr load the IPv4 source and destination address into
// register 1.
func ipSaddr() expr.Any {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
}

func ipDaddr() expr.Any {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
}

func inCIDR(cidr netip.Prefix) []expr.Any {
	return []expr.Any{maskExpr(cidr), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: prefixAddr(cidr)}}
}

// maskExpr keeps the network bits of prefix p in register 1.
func maskExpr(p netip.Prefix) expr.Any {
	m := binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-p.Bits()))
	return &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: m, Xor: make([]byte, 4)}
}

func prefixAddr(p netip.Prefix) []byte {
	a := p.Masked().Addr().As4()
	return a[:]
}

func l4proto(p cluster.Protocol) byte {
	if p == cluster.UDP {
		return unix.IPPROTO_UDP
	}
	return unix.IPPROTO_TCP
}
