package proxy

import (
	"encoding/binary"
	"fmt"
	"net/netip"
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

// NFT steers VIP traffic into the proxy with nftables:
//
//	table ip rune {
//	  map svc_tcp { type ipv4_addr . inet_service : inet_service }   # VIP . port : proxy port
//	  map svc_udp { ... }
//	  chain prerouting { type nat hook prerouting priority dstnat   # from containers
//	    meta l4proto tcp redirect to ip daddr . tcp dport map @svc_tcp
//	    meta l4proto udp redirect to ip daddr . udp dport map @svc_udp }
//	  chain output { type nat hook output priority -100 ... }       # from the host
//	}
//	table ip rune_guard {   # priority dstnat+10, after the redirect
//	  chain prerouting/output { ip daddr <CIDR> meta l4proto tcp reject with tcp reset
//	                            ip daddr <CIDR> reject }
//	}
//
// plus a route <CIDR> dev lo src 127.0.0.1, so host processes can connect to VIPs without
// a default route. Dispatch is one map lookup whatever the number of
// services, and a change touches only the map elements that differ.
type NFT struct {
	cfg  NFTConfig
	conn *nftables.Conn

	table *nftables.Table
	maps  map[cluster.Protocol]*nftables.Set
	cidr  netip.Prefix
	// installed mirrors the map elements in the kernel; nil forces a full
	// reinstall (first sync, or after a failed transaction left it unknown).
	installed map[redirectKey]uint16
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
// calls add and delete only the map elements that changed.
func (n *NFT) Sync(cidr netip.Prefix, rs []Redirect) (err error) {
	start := time.Now()
	defer func() {
		nftSyncDuration.Observe(time.Since(start).Seconds())
		if err != nil {
			nftSyncErrors.Inc()
			n.installed = nil
		}
	}()
	want := make(map[redirectKey]uint16, len(rs))
	for _, r := range rs {
		want[redirectKey{r.Protocol, r.VIP}] = r.Port
	}
	if n.installed == nil || cidr != n.cidr {
		if err := n.install(cidr, want); err != nil {
			return err
		}
		return ensureRoute(cidr, n.cfg.NetNS)
	}
	return n.update(want)
}

func (n *NFT) install(cidr netip.Prefix, want map[redirectKey]uint16) error {
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
	maps := map[cluster.Protocol]*nftables.Set{}
	for _, proto := range []cluster.Protocol{cluster.TCP, cluster.UDP} {
		s := &nftables.Set{
			Table: t, Name: "svc_" + string(proto), IsMap: true, Concatenation: true,
			KeyType:  nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService),
			DataType: nftables.TypeInetService,
		}
		var elems []nftables.SetElement
		for k, port := range want {
			if k.proto == proto {
				elems = append(elems, element(k.vip, port))
			}
		}
		if err := n.conn.AddSet(s, nil); err != nil {
			return fmt.Errorf("nftables: map %s: %w", s.Name, err)
		}
		if err := nftconn.InChunks(n.conn.SetAddElements, s, elems); err != nil {
			return fmt.Errorf("nftables: map %s: %w", s.Name, err)
		}
		maps[proto] = s
	}
	for _, hook := range []*nftables.ChainHook{nftables.ChainHookPrerouting, nftables.ChainHookOutput} {
		ch := n.conn.AddChain(&nftables.Chain{
			Name: hookName(hook), Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: hook, Priority: nftables.ChainPriorityNATDest,
		})
		for _, proto := range []cluster.Protocol{cluster.TCP, cluster.UDP} {
			n.conn.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: redirectExprs(proto, maps[proto])})
		}
	}
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("nftables: install tables %s and %s for %s: %w", n.cfg.Table, n.cfg.GuardTable, cidr, err)
	}
	n.table, n.maps, n.cidr, n.installed = t, maps, cidr, want
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

func (n *NFT) update(want map[redirectKey]uint16) error {
	add := map[cluster.Protocol][]nftables.SetElement{}
	del := map[cluster.Protocol][]nftables.SetElement{}
	for k, old := range n.installed {
		if port, ok := want[k]; !ok || port != old {
			del[k.proto] = append(del[k.proto], element(k.vip, old))
		}
	}
	for k, port := range want {
		if old, ok := n.installed[k]; !ok || old != port {
			add[k.proto] = append(add[k.proto], element(k.vip, port))
		}
	}
	if len(add) == 0 && len(del) == 0 {
		return nil
	}
	// Deletes first: a changed element is deleted and re-added in the same
	// transaction, so no packet sees it missing.
	for proto, elems := range del {
		if err := nftconn.InChunks(n.conn.SetDeleteElements, n.maps[proto], elems); err != nil {
			return err
		}
	}
	for proto, elems := range add {
		if err := nftconn.InChunks(n.conn.SetAddElements, n.maps[proto], elems); err != nil {
			return err
		}
	}
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("nftables: update maps of table %s: %w", n.cfg.Table, err)
	}
	n.installed = want
	return nil
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

// element encodes VIP . port : proxy port. Concatenated keys pad each field
// to a 4-byte register.
func element(vip netip.AddrPort, port uint16) nftables.SetElement {
	key := make([]byte, 8)
	a := vip.Addr().As4()
	copy(key, a[:])
	binary.BigEndian.PutUint16(key[4:], vip.Port())
	val := make([]byte, 2)
	binary.BigEndian.PutUint16(val, port)
	return nftables.SetElement{Key: key, Val: val}
}

// redirectExprs: meta l4proto P redirect to ip daddr . P dport map @svc_P.
func redirectExprs(proto cluster.Protocol, m *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{l4proto(proto)}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
		&expr.Redir{RegisterProtoMin: 1},
	}
}

// guardExprs: ip daddr CIDR [meta l4proto tcp] counter reject. TCP gets a
// reset and everything else ICMP port unreachable, so clients fail at once
// (connection refused) instead of hanging, and pings to a VIP get no echo.
func guardExprs(cidr netip.Prefix, tcp bool) []expr.Any {
	network := cidr.Masked().Addr().As4()
	m := make([]byte, 4)
	binary.BigEndian.PutUint32(m, ^uint32(0)<<(32-cidr.Bits()))
	e := []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: m, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: network[:]},
	}
	if tcp {
		return append(e,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Counter{},
			&expr.Reject{Type: unix.NFT_REJECT_TCP_RST})
	}
	return append(e, &expr.Counter{}, &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 3})
}

func l4proto(p cluster.Protocol) byte {
	if p == cluster.UDP {
		return unix.IPPROTO_UDP
	}
	return unix.IPPROTO_TCP
}
