// Package rune is the CoreDNS plugin that answers for Rune services: it is
// authoritative for rune. (<svc>.<ns>.rune → the service VIP) and for the
// reverse zones of the cluster CIDR (VIP → name).
//
// Answers come from a cluster.View: an immutable snapshot per log batch, so
// the answer path takes no lock and costs one map lookup per query. Inside
// runed the View is the node runtime's own; in a stock CoreDNS it will be fed
// by a runed's watch API (issue 8).
package rune

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnsutil"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/plugin/pkg/ede"
)

const (
	// Zone is the cluster domain.
	Zone = "rune."
	// The zones' name server is ns.dns.rune.; it resolves to the address the
	// query arrived on, so the NS record at the apex is never a dangling name.
	nsNamespace = "dns"
	nsService   = "ns"
	nsName      = nsService + "." + nsNamespace + "." + Zone
	hostmaster  = "hostmaster." + Zone
)

// loopback is the dev-mode answer: services are reached through port
// forwards on the laptop rather than through VIPs.
var loopback = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// Rune is the rune plugin's handler.
type Rune struct {
	Next plugin.Handler
	// TTL of every answer; also the SOA minimum, so negative answers are
	// cached no longer than positive ones.
	TTL uint32
	// DevMode answers 127.0.0.1 instead of the VIP for existing services.
	DevMode bool

	view atomic.Pointer[cluster.View]
	// rev caches the reverse zones of the cluster CIDR the snapshot carries.
	rev atomic.Pointer[reverseZones]

	// The fast paths (fastpath.go) this handler runs, one per server
	// address of its block.
	fastMu sync.Mutex
	fast   []*fastPath
}

// SetView points the handler at the View it answers from.
func (r *Rune) SetView(v *cluster.View) { r.view.Store(v) }

// Name implements plugin.Handler.
func (r *Rune) Name() string { return "rune" }

// result classifies an answer, for the reply's shape and for metrics.
type result uint8

const (
	resultAnswer result = iota
	resultNoData
	resultNXDomain
	resultNotLoaded
	resultStale
	resultRefused
	numResults
)

// ServeDNS implements plugin.Handler.
func (r *Rune) ServeDNS(ctx context.Context, w dns.ResponseWriter, req *dns.Msg) (int, error) {
	state := request.Request{W: w, Req: req}
	// Lower-casing the raw name (rather than request.Name's canonical
	// presentation form) costs no allocation for the usual lower-case query;
	// escaped labels never match a service name anyway.
	qname := strings.ToLower(req.Question[0].Name)
	v := r.view.Load()

	zone := r.zoneOf(v, qname)
	if zone == "" {
		return plugin.NextOrFailure(r.Name(), r.Next, ctx, w, req)
	}

	// What no state changes is refused before the state is looked at, as
	// BIND and Knot do: the zones exist in class IN only, and they are not
	// offered for transfer (a listing of every service for any client).
	switch q := req.Question[0]; {
	case q.Qclass != dns.ClassINET:
		responses[resultRefused].Inc()
		return ede.Error(w, req, dns.RcodeRefused, dns.ExtendedErrorCodeNotAuthoritative,
			"rune: "+zone+" exists in class IN only")
	case q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR:
		responses[resultRefused].Inc()
		return ede.Error(w, req, dns.RcodeRefused, dns.ExtendedErrorCodeProhibited,
			"rune: zone transfers of "+zone+" are not offered")
	}

	// Never NXDOMAIN for a name we have not loaded, never an answer from a
	// view that has lost the log: both fail closed, and both recover by
	// themselves once the view catches up. Both are EDE "Not Ready", as
	// runegate answers for the same conditions (the view is one of its
	// readiness checks); the EXTRA-TEXT tells them apart.
	if v == nil || !v.Loaded() {
		responses[resultNotLoaded].Inc()
		return ede.ServFail(w, req, dns.ExtendedErrorCodeNotReady, "rune: cluster view not loaded yet")
	}
	if v.Stale() {
		responses[resultStale].Inc()
		return ede.ServFail(w, req, dns.ExtendedErrorCodeNotReady, fmt.Sprintf(
			"rune: cluster view is %s behind the OrderedLog, past the stale budget of %s; failing closed until it catches up",
			v.Lag().Round(time.Millisecond), v.StaleBudget()))
	}

	m, res := r.reply(v.Snapshot(), &state, qname, zone)
	responses[res].Inc()
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

// reply builds the answer to a query for qname (lower case) in zone, from a
// view that is loaded and within its stale budget. The fast path renders its
// wire answers with it too, so both paths answer from the same code.
func (r *Rune) reply(snap *cluster.Snapshot, state *request.Request, qname, zone string) (*dns.Msg, result) {
	m := new(dns.Msg)
	m.SetReply(state.Req)
	m.Authoritative = true

	var res result
	if zone == Zone {
		res = r.serveForward(snap, state, qname, m)
	} else {
		res = r.serveReverse(snap, state, qname, zone, m)
	}
	switch res {
	case resultNXDomain:
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, r.soa(zone, snap.Seq))
	case resultNoData:
		m.Ns = append(m.Ns, r.soa(zone, snap.Seq))
	}
	return m, res
}

// zoneOf returns the zone of ours that holds qname (lower case), or "".
func (r *Rune) zoneOf(v *cluster.View, qname string) string {
	if qname == Zone || strings.HasSuffix(qname, "."+Zone) {
		return Zone
	}
	if v != nil {
		return r.reverseZone(v.Snapshot(), qname)
	}
	return ""
}

// serveForward answers a name under rune.:
//
//	rune.                             SOA, NS
//	<ns>.rune.                        empty non-terminal while ns has services
//	<svc>.<ns>.rune.                  A
//	_<proto>.<svc>.<ns>.rune.         empty non-terminal
//	_<port>._<proto>.<svc>.<ns>.rune. SRV (+ A of the target)
func (r *Rune) serveForward(snap *cluster.Snapshot, state *request.Request, qname string, m *dns.Msg) result {
	q := state.Req.Question[0]
	rest := strings.TrimSuffix(qname, Zone)
	if rest == "" {
		return r.serveApex(state, Zone, snap.Seq, m)
	}
	rest, ns := cutLast(rest)
	if rest == "" {
		if ns == nsNamespace || snap.NamespaceExists(ns) {
			return resultNoData
		}
		return resultNXDomain
	}
	rest, svc := cutLast(rest)
	e, ok := snap.Service(cluster.NamespacedName{Namespace: ns, Name: svc})
	if !ok {
		if rest == "" && ns == nsNamespace && svc == nsService {
			return r.serveNameserver(state, q.Name, q.Qtype, &m.Answer)
		}
		return resultNXDomain
	}
	if rest == "" {
		if !asks(q.Qtype, dns.TypeA) {
			return resultNoData
		}
		m.Answer = append(m.Answer, r.a(q.Name, r.address(e.Value)))
		return resultAnswer
	}

	rest, proto := cutLast(rest)
	proto, ok = strings.CutPrefix(proto, "_")
	if !ok || !hasProtocol(e.Value.Spec.Ports, proto) {
		return resultNXDomain
	}
	if rest == "" {
		return resultNoData
	}
	rest, portLabel := cutLast(rest)
	portName, ok := strings.CutPrefix(portLabel, "_")
	if rest != "" || !ok {
		return resultNXDomain
	}
	port, ok := findPort(e.Value.Spec.Ports, portName, proto)
	if !ok {
		return resultNXDomain
	}
	if !asks(q.Qtype, dns.TypeSRV) {
		return resultNoData
	}
	target := svc + "." + ns + "." + Zone
	m.Answer = append(m.Answer, &dns.SRV{
		Hdr:    dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: r.TTL},
		Weight: 100, Port: uint16(port.Port), Target: target,
	})
	m.Extra = append(m.Extra, r.a(target, r.address(e.Value)))
	return resultAnswer
}

// serveReverse answers a name in one of the cluster CIDR's reverse zones.
func (r *Rune) serveReverse(snap *cluster.Snapshot, state *request.Request, qname, zone string, m *dns.Msg) result {
	q := state.Req.Question[0]
	if qname == zone {
		return r.serveApex(state, zone, snap.Seq, m)
	}
	ip, labels, ok := parseReverse4(strings.TrimSuffix(qname, dnsutil.IP4arpa))
	switch {
	case !ok:
		return resultNXDomain
	case labels < 4:
		// A partial address inside the CIDR: VIPs may live below it, so it
		// is an empty non-terminal, never NXDOMAIN (RFC 8020).
		return resultNoData
	}
	e, ok := snap.ServiceByVIP(ip)
	if !ok {
		return resultNXDomain
	}
	if !asks(q.Qtype, dns.TypePTR) {
		return resultNoData
	}
	m.Answer = append(m.Answer, &dns.PTR{
		Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: r.TTL},
		Ptr: e.Value.Spec.Name + "." + e.Value.Spec.Namespace + "." + Zone,
	})
	return resultAnswer
}

// serveApex answers SOA and NS at a zone apex; other types are NODATA.
func (r *Rune) serveApex(state *request.Request, zone string, seq uint64, m *dns.Msg) result {
	switch state.QType() {
	case dns.TypeSOA, dns.TypeANY:
		// The serial is the log seq the snapshot reflects: it grows with
		// every change, as secondaries expect.
		m.Answer = append(m.Answer, r.soa(zone, seq))
		return resultAnswer
	case dns.TypeNS:
		m.Answer = append(m.Answer, &dns.NS{
			Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: r.TTL},
			Ns:  nsName,
		})
		r.serveNameserver(state, nsName, dns.TypeA, &m.Extra)
		r.serveNameserver(state, nsName, dns.TypeAAAA, &m.Extra)
		return resultAnswer
	}
	return resultNoData
}

// serveNameserver answers ns.dns.rune. with the address the query came in
// on: that is the address that reached this server.
func (r *Rune) serveNameserver(state *request.Request, name string, qtype uint16, section *[]dns.RR) result {
	ip, ok := localAddr(state)
	if !ok {
		return resultNoData
	}
	hdr := dns.RR_Header{Name: name, Class: dns.ClassINET, Ttl: r.TTL}
	switch {
	case asks(qtype, dns.TypeA) && ip.Is4():
		hdr.Rrtype = dns.TypeA
		*section = append(*section, &dns.A{Hdr: hdr, A: ip.AsSlice()})
	case asks(qtype, dns.TypeAAAA) && ip.Is6():
		hdr.Rrtype = dns.TypeAAAA
		*section = append(*section, &dns.AAAA{Hdr: hdr, AAAA: ip.AsSlice()})
	default:
		return resultNoData
	}
	return resultAnswer
}

// localAddr is the address the query arrived on. A wildcard UDP socket (a
// server block without bind) reports the unspecified address, and miekg/dns
// keeps the packet's destination to itself; the address this host sends
// from to the client stands in for it then: one of this host's, on the
// route to the client, and one the wildcard socket listens on. It may
// differ from the destination the client used when the host has several
// addresses on that route (a query to 127.0.0.123 is answered 127.0.0.1).
func localAddr(state *request.Request) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(state.LocalIP())
	if ip = ip.Unmap(); err == nil && !ip.IsUnspecified() {
		return ip, true
	}
	remote, err := netip.ParseAddr(state.IP())
	if err != nil {
		return netip.Addr{}, false
	}
	port, _ := strconv.Atoi(state.Port())
	// Connecting a UDP socket sends nothing: it only asks the kernel for
	// the route, and with it the source address.
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(remote.Unmap(), uint16(port))))
	if err != nil {
		return netip.Addr{}, false
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), true
}

// asks reports whether a query of qtype asks for records of type t: ANY is
// answered with the one RRset the name has (RFC 8482), not every type.
func asks(qtype, t uint16) bool { return qtype == t || qtype == dns.TypeANY }

func (r *Rune) address(rec *cluster.ServiceRecord) netip.Addr {
	if r.DevMode {
		return loopback
	}
	return rec.VIP
}

func (r *Rune) a(name string, ip netip.Addr) *dns.A {
	return &dns.A{
		Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: r.TTL},
		A:   net.IP(ip.AsSlice()),
	}
}

func (r *Rune) soa(zone string, seq uint64) *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: r.TTL},
		Ns:      nsName,
		Mbox:    hostmaster,
		Serial:  uint32(seq),
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  r.TTL,
	}
}

// cutLast splits "a.b.c." into "a.b." and "c" without allocating.
func cutLast(name string) (rest, label string) {
	name = strings.TrimSuffix(name, ".")
	i := strings.LastIndexByte(name, '.')
	return name[:i+1], name[i+1:]
}

func protocolOf(p cluster.Port) cluster.Protocol {
	if p.Protocol == "" {
		return cluster.TCP
	}
	return p.Protocol
}

func hasProtocol(ports []cluster.Port, proto string) bool {
	for _, p := range ports {
		if string(protocolOf(p)) == proto {
			return true
		}
	}
	return false
}

// findPort matches an SRV port label the way Kubernetes does, by port name;
// a port without a name is addressed by its number instead.
func findPort(ports []cluster.Port, label, proto string) (cluster.Port, bool) {
	for _, p := range ports {
		if string(protocolOf(p)) != proto {
			continue
		}
		if p.Name != "" && strings.EqualFold(p.Name, label) ||
			p.Name == "" && label == strconv.Itoa(p.Port) {
			return p, true
		}
	}
	return cluster.Port{}, false
}

// parseReverse4 reads the (up to four) octet labels in front of
// in-addr.arpa., most significant last. ok is false for anything that is not
// a decimal octet.
func parseReverse4(labels string) (ip netip.Addr, n int, ok bool) {
	var b [4]byte
	for labels != "" {
		var l string
		labels, l = cutLast(labels)
		v, err := strconv.ParseUint(l, 10, 8)
		if err != nil || n == 4 || len(l) > 1 && l[0] == '0' {
			return netip.Addr{}, 0, false
		}
		b[n] = byte(v)
		n++
	}
	return netip.AddrFrom4(b), n, true
}
