package rune

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin/metrics"
	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"

	"github.com/runenet/runenet/cluster"
)

var log = clog.NewWithPlugin("rune")

// fastPath serves one CoreDNS server's UDP address for the rune block.
//
// CoreDNS's server spends a goroutine per query, grows its stack through
// the plugin chain, looks up metric labels and makes a syscall per packet
// each way; the answer itself is a few per cent of that. The fast path opens
// its own sockets on the server's address (SO_REUSEPORT, the group CoreDNS's
// socket is in), steers the address's packets to them with a reuseport BPF
// program, and reads and writes them in batches (recvmmsg/sendmmsg) from one
// goroutine per socket. A query it can answer (parseQuery, render) gets the
// reply the plugin chain would write, byte for byte, and the metrics the
// chain would count. Every other packet goes, unchanged, to a miekg/dns
// server on a pipe (slowConn) whose handler is the CoreDNS server's own
// ServeDNS: the full chain, as if it had arrived on CoreDNS's socket. A
// packet that still lands on CoreDNS's socket (during a reload, or when the
// BPF program cannot be attached) is served by CoreDNS as before.
type fastPath struct {
	r     *Rune
	srv   *dnsserver.Server
	gate  gate // nil without runegate in the block
	zones map[string]bool
	stats *chainMetrics // nil without prometheus in the block
	fam   string

	addr    string         // the address its sockets share with CoreDNS's (see reusegroup.go)
	conns   []*net.UDPConn // duplicates of the address's fast path sockets
	slow    *slowConn
	dns     *dns.Server
	workers sync.WaitGroup // serve, one per socket
	wg      sync.WaitGroup // the full chain's server
	// stopping: the workers end at their next read error (paused; set and
	// cleared under reuseGroups' lock).
	stopping atomic.Bool
}

// gate is runegate's handler, asked through an interface: importing it
// would link the node runtime into a stock CoreDNS.
type gate interface {
	Open() (bool, []string)
}

// transparent are the plugins that may sit in the rune block's chain: for
// the queries the fast path answers, each either passes them on unchanged
// or is behind rune (which answers without calling them). A block with any
// other plugin (log, rewrite, cache, acl, ...) gets no fast path: that
// plugin sees every query.
var transparent = func() map[string]bool {
	m := map[string]bool{}
	for _, p := range TransparentPlugins {
		m[p] = true
	}
	return m
}()

// TransparentPlugins are the plugins a rune block may hold and keep the
// fast path (runed -plugins lists them).
var TransparentPlugins = []string{"prometheus", "errors", "runegate", "rune", "dataplane", "netpolicy", "ingress"}

// eligible returns why the fast path cannot serve srv for the block cfg, or "".
func eligible(cfg *dnsserver.Config, srv *dnsserver.Server) (reason string, zones map[string]bool) {
	if reason := blockIneligible(cfg); reason != "" {
		return reason, nil
	}
	addr, ok := strings.CutPrefix(srv.Addr, "dns://")
	if !ok {
		return "not a plain DNS server", nil
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || ap.Addr().IsUnspecified() {
		// A wildcard socket does not know a packet's destination;
		// miekg/dns keeps it per packet for the reply's source.
		return "the server listens on every address (use bind)", nil
	}
	return serverZones(cfg, srv)
}

// blockIneligible returns why the block cfg rules the fast path out on
// every server, or "".
func blockIneligible(cfg *dnsserver.Config) string {
	for _, h := range cfg.Handlers() {
		if !transparent[h.Name()] {
			return fmt.Sprintf("the block has %q, which must see every query", h.Name())
		}
	}
	switch {
	case len(cfg.FilterFuncs) > 0 || cfg.ViewName != "":
		return "the block has a view"
	case cfg.ProxyProtoConnPolicy != nil:
		return "the block takes the PROXY protocol"
	case cfg.NumSockets > 1:
		return "the block has multisocket"
	}
	return ""
}

// serverZones reads the zones srv routes queries by (the server blocks
// sharing its address) and marks those whose chain is the rune block's.
// CoreDNS exports no accessor; read-only reflection finds them, and any
// mismatch of field or type keeps the fast path off. It also refuses a
// server where some block has opted into more opcodes (its accept function
// is not exported either).
func serverZones(cfg *dnsserver.Config, srv *dnsserver.Server) (string, map[string]bool) {
	sv := reflect.ValueOf(srv).Elem()
	zv := sv.FieldByName("zones")
	if !zv.IsValid() || zv.Type() != reflect.TypeOf(map[string][]*dnsserver.Config(nil)) {
		return "this CoreDNS's server zones are not readable", nil
	}
	if ov := sv.FieldByName("allowedOpcodes"); !ov.IsValid() || ov.Kind() != reflect.Map || ov.Len() > 0 {
		return "a block on this address accepts extra opcodes", nil
	}
	mine := cfg.Handler("rune")
	zones := map[string]bool{}
	for _, k := range zv.MapKeys() {
		cs := zv.MapIndex(k)
		ours := false
		if cs.Len() == 1 {
			c := (*dnsserver.Config)(unsafe.Pointer(cs.Index(0).Pointer()))
			ours = c.Handler("rune") == mine
		}
		zones[k.String()] = ours
	}
	return "", zones
}

// routed reports whether the CoreDNS server would send qname (lower case)
// to the rune block: the longest zone holding it must be one of the block's,
// as in dnsserver.Server.ServeDNS.
func (fp *fastPath) routed(qname string) bool {
	for off, end := 0, false; !end; off, end = dns.NextLabel(qname, off) {
		if ours, ok := fp.zones[qname[off:]]; ok {
			return ours
		}
	}
	return fp.zones["."]
}

// startFast starts a fast path for srv if the block allows it; it logs why not.
func (r *Rune) startFast(cfg *dnsserver.Config, srv *dnsserver.Server) {
	addr := strings.TrimPrefix(srv.Addr, "dns://")
	reason, zones := eligible(cfg, srv)
	if reason != "" {
		log.Infof("fast path off for %s: %s", srv.Addr, reason)
		declined(addr)
		return
	}
	fp := &fastPath{r: r, srv: srv, zones: zones}
	if g, ok := cfg.Handler("runegate").(gate); ok {
		fp.gate = g
	}
	if m, ok := cfg.Handler("prometheus").(*metrics.Metrics); ok {
		fp.stats = &chainMetrics{m: m, server: srv.Addr}
	}
	if err := fp.start(addr); err != nil {
		log.Warningf("fast path off for %s: %v", srv.Addr, err)
		declined(addr)
		return
	}
	r.fastMu.Lock()
	r.fast = append(r.fast, fp)
	r.fastMu.Unlock()
}

// stopFast stops every fast path the handler started.
func (r *Rune) stopFast() {
	r.fastMu.Lock()
	defer r.fastMu.Unlock()
	for _, fp := range r.fast {
		fp.stop()
	}
	r.fast = nil
}

func (fp *fastPath) start(addr string) error {
	ap := netip.MustParseAddrPort(addr)
	fp.fam = "1"
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		fp.fam = "2"
	}
	if err := fp.joinGroup(addr, min(runtime.GOMAXPROCS(0), 8)); err != nil {
		return err
	}
	fp.slow = newSlowConn(fp.conns[0])
	srv := fp.srv
	fp.dns = &dns.Server{PacketConn: fp.slow, Net: "udp", TsigSecret: srv.TsigSecret,
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, m *dns.Msg) {
			// What dnsserver.Server.ServePacket's handler does.
			ctx := context.WithValue(context.Background(), dnsserver.Key{}, srv)
			ctx = context.WithValue(ctx, dnsserver.LoopKey{}, 0)
			srv.ServeDNS(ctx, w, m)
		})}
	fp.wg.Add(1)
	go func() { defer fp.wg.Done(); fp.dns.ActivateAndServe() }()
	fp.startWorkers()
	return nil
}

func (fp *fastPath) startWorkers() {
	fp.workers.Add(len(fp.conns))
	for _, c := range fp.conns {
		go func() { defer fp.workers.Done(); fp.serve(c) }()
	}
}

func (fp *fastPath) closeConns() {
	for _, c := range fp.conns {
		c.Close()
	}
}

// pause stops fp's workers reading, at once or, given a time, once they
// have read what arrives until then; the sockets stay open (reusegroup.go,
// under whose lock it runs).
func (fp *fastPath) pause(until time.Time) {
	if fp.stopping.Swap(true) {
		return
	}
	if until.IsZero() {
		until = time.Unix(1, 0)
	}
	for _, c := range fp.conns {
		c.SetReadDeadline(until)
	}
}

// resume undoes pause.
func (fp *fastPath) resume() {
	if !fp.stopping.Load() {
		return
	}
	fp.workers.Wait()
	for _, c := range fp.conns {
		c.SetReadDeadline(time.Time{})
	}
	fp.stopping.Store(false)
	fp.startWorkers()
}

// finish ends a paused fp: once its workers are done, the full chain's
// server, which returns when the queries handed to it are answered through
// the sockets, and then fp's connections.
func (fp *fastPath) finish() {
	fp.workers.Wait()
	fp.slow.Close()
	fp.wg.Wait()
	fp.closeConns()
}

// ready reports whether answers may come from the view: otherwise the full
// chain answers (SERVFAIL with the EDE saying why).
func (fp *fastPath) ready() (*cluster.View, bool) {
	v := fp.r.view.Load()
	if v == nil || !v.Loaded() || v.Stale() {
		return nil, false
	}
	if fp.gate != nil {
		if ok, _ := fp.gate.Open(); !ok {
			return nil, false
		}
	}
	return v, true
}

// batch is how many packets one recvmmsg/sendmmsg moves at most.
const batch = 64

// entry is a worker's cached answer for a name and type, with the metric
// series it counts into.
type entry struct {
	a      *wireAnswer // nil: leave to the full chain
	name   string
	qtype  uint16
	series [2]*series // without, with DO
	// svc is the one service a positive answer under rune. depends on:
	// it is kept across snapshots until the View reports svc changed. The
	// zero value: rendered again with every snapshot (NODATA and NXDOMAIN
	// carry the snapshot's SOA serial; PTR answers, declined names).
	svc cluster.NamespacedName
}

// serve is one socket's worker: it owns its cache, so the answer path takes
// no lock. With each new snapshot it drops the answers of the services the
// View says changed and everything rendered from the snapshot as a whole:
// during a rolling deploy (a change every millisecond) the answers of the
// services not being deployed stay cached.
func (fp *fastPath) serve(c *net.UDPConn) {
	pc := ipv4.NewPacketConn(c) // recvmmsg/sendmmsg; the same calls for IPv6
	in := make([]ipv4.Message, batch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, 4096)}
	}
	out := make([]ipv4.Message, batch)
	outBuf := make([][]byte, batch)
	for i := range outBuf {
		outBuf[i] = make([]byte, 0, dns.MinMsgSize)
		out[i].Buffers = [][]byte{nil}
	}
	type pending struct {
		e   *entry
		do  bool
		req int
	}
	counted := make([]pending, 0, batch)
	cache := map[string]*entry{}    // entries with a service
	volatile := map[string]*entry{} // the rest
	bySvc := map[cluster.NamespacedName][]string{}
	var snap *cluster.Snapshot
	negatives := 0
	key := make([]byte, 0, 260)
	for {
		n, err := pc.ReadBatch(in, 0)
		if err != nil {
			if isClosed(err) || fp.stopping.Load() {
				return
			}
			continue
		}
		start := time.Now()
		v, ok := fp.ready()
		if ok {
			if s := v.Snapshot(); s != snap {
				if ch := s.ChangesSince(snap); ch.Full {
					clear(cache)
					clear(bySvc)
				} else {
					for svc := range ch.Services {
						for _, k := range bySvc[svc] {
							delete(cache, k)
						}
						delete(bySvc, svc)
					}
				}
				clear(volatile)
				negatives = 0
				snap = s
			}
		}
		k := 0
		counted = counted[:0]
		for i := range n {
			p := in[i].Buffers[0][:in[i].N]
			if ok && in[i].N <= dns.MinMsgSize {
				q, kb, parsed := parseQuery(p, key[:0])
				key = kb
				if parsed {
					e := cache[string(key)]
					if e == nil {
						e = volatile[string(key)]
					}
					if e == nil {
						e = fp.newEntry(snap, key, q.qtype)
						// Answers exist only for the cluster's names, so
						// they are bounded; queries the fast path leaves
						// to the chain (other zones, unknown names) are
						// remembered up to maxNegative, so a flood of
						// random names costs renders, not memory.
						switch {
						case e.svc != cluster.NamespacedName{}:
							k := string(key)
							cache[k] = e
							bySvc[e.svc] = append(bySvc[e.svc], k)
						case e.a != nil || negatives < maxNegative:
							volatile[string(key)] = e
							if e.a == nil {
								negatives++
							}
						}
					}
					if e.a != nil {
						outBuf[k] = e.a.write(outBuf[k][:0], p, q)
						out[k].Buffers[0] = outBuf[k]
						out[k].Addr = in[i].Addr
						counted = append(counted, pending{e, q.do, len(p)})
						k++
						continue
					}
				}
			}
			fp.slow.deliver(p, in[i].Addr)
		}
		for sent := 0; sent < k; {
			m, err := pc.WriteBatch(out[sent:k], 0)
			if err != nil {
				if isClosed(err) {
					return
				}
				break // as miekg/dns: a reply that cannot be sent is dropped
			}
			sent += m
		}
		fastPackets.answered.Add(float64(k))
		fastPackets.declined.Add(float64(n - k))
		dur := time.Since(start).Seconds()
		for _, c := range counted {
			responses[c.e.a.res].Inc()
			if s := fp.seriesOf(c.e, c.do); s != nil {
				// The chain's recorder sees the reply before CoreDNS
				// appends the OPT record: its size is the rendered one.
				s.observe(dur, c.req, len(c.e.a.msg))
			}
		}
	}
}

// maxNegative bounds the entries per worker and snapshot of queries the
// fast path declines.
const maxNegative = 1 << 16

func (fp *fastPath) newEntry(snap *cluster.Snapshot, key []byte, qtype uint16) *entry {
	e := &entry{name: keyName(key), qtype: qtype}
	if fp.routed(e.name) {
		e.a = fp.r.render(snap, e.name, qtype)
	}
	if e.a != nil && e.a.res == resultAnswer {
		e.svc = answerService(snap, e.name)
	}
	return e
}

// answerService is the service whose name a positive answer for name is
// under (<svc>.<ns>.rune. and the SRV names below it: serveForward answers
// them from that service's record alone), or the zero value.
func answerService(snap *cluster.Snapshot, name string) cluster.NamespacedName {
	rest, ok := strings.CutSuffix(name, "."+Zone)
	if !ok {
		return cluster.NamespacedName{}
	}
	rest, ns := cutLast(rest + ".")
	_, svc := cutLast(rest)
	nn := cluster.NamespacedName{Namespace: ns, Name: svc}
	if _, ok := snap.Service(nn); !ok || svc == "" {
		// The nameserver's own name: answered from the node records.
		return cluster.NamespacedName{}
	}
	return nn
}

// keyName is the presentation form of the name in a parseQuery key.
func keyName(key []byte) string {
	var b strings.Builder
	for off := 0; key[off] != 0; off += 1 + int(key[off]) {
		b.Write(key[off+1 : off+1+int(key[off])])
		b.WriteByte('.')
	}
	return b.String()
}

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
