// Package runegate is a CoreDNS plugin that fails .rune queries closed until
// the node's data path is ready.
//
// DNS must not hand out a VIP the data path cannot carry yet ("DNS works,
// connections hang"), and it must never say NXDOMAIN for a name it has merely
// not loaded: a negative answer is cached by clients for the SOA minimum, a
// SERVFAIL is retried. So until every check in readiness.Default passes, the
// gate answers SERVFAIL with an Extended DNS Error (RFC 8914) "Not Ready"
// whose EXTRA-TEXT lists what is still missing.
package runegate

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"

	"github.com/runenet/runenet/readiness"
)

// Gate is the runegate handler.
type Gate struct {
	Next plugin.Handler
	// Zones are the (lower-case, fully qualified) zones the gate holds back;
	// queries for other names pass straight through, so forwarding works
	// before the data path is up.
	Zones []string
	// Check reports whether the data path can carry traffic and, if not,
	// what is failing: readiness.Default.Ready in production.
	Check func() (bool, []string)

	// openUntil (unix nanos) caches a passing Check: running every
	// subsystem's check on every query cost over a tenth of runed's CPU
	// under load. A failing Check is never cached, so the gate opens on the
	// first query after the data path is ready, and closes at most
	// recheckOpen late (the rune plugin checks its own view on every query).
	openUntil atomic.Int64
}

const recheckOpen = 50 * time.Millisecond

// New returns a gate over zones that consults readiness.Default.
func New(zones []string) *Gate {
	return &Gate{Zones: zones, Check: readiness.Default.Ready}
}

// Name implements plugin.Handler.
func (g *Gate) Name() string { return "runegate" }

// ServeDNS implements plugin.Handler.
func (g *Gate) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if !g.gates(r.Question[0].Name) {
		return plugin.NextOrFailure(g.Name(), g.Next, ctx, w, r)
	}
	if now := time.Now().UnixNano(); now >= g.openUntil.Load() {
		ok, failing := g.Check()
		if !ok {
			heldBack.Inc()
			return ServFail(w, r, dns.ExtendedErrorCodeNotReady, "rune: data path not ready: "+strings.Join(failing, "; "))
		}
		g.openUntil.Store(now + int64(recheckOpen))
	}
	return plugin.NextOrFailure(g.Name(), g.Next, ctx, w, r)
}

// gates reports whether qname is in one of the gate's zones. A suffix test
// on the lower-cased name: plugin.Zones.Matches' label-wise comparison was
// the gate's next largest cost.
func (g *Gate) gates(qname string) bool {
	qname = strings.ToLower(qname)
	for _, z := range g.Zones {
		if z == "." || qname == z || strings.HasSuffix(qname, z) && qname[len(qname)-len(z)-1] == '.' {
			return true
		}
	}
	return false
}

// ServFail writes a SERVFAIL for r carrying an Extended DNS Error (see Error).
func ServFail(w dns.ResponseWriter, r *dns.Msg, infoCode uint16, text string) (int, error) {
	return Error(w, r, dns.RcodeServerFailure, infoCode, text)
}

// Error writes a reply to r with rcode and an Extended DNS Error. The EDE
// rides in the OPT record, so it is only added when the client sent one
// (RFC 6891: no OPT in a reply to a query without it).
//
// It returns dns.RcodeSuccess, the CoreDNS convention for "a reply has been
// written": returning the error rcode would make the server write a second one.
func Error(w dns.ResponseWriter, r *dns.Msg, rcode int, infoCode uint16, text string) (int, error) {
	m := new(dns.Msg)
	m.SetRcode(r, rcode)
	if o := r.IsEdns0(); o != nil {
		m.SetEdns0(o.UDPSize(), o.Do())
		opt := m.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: infoCode, ExtraText: text})
	}
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}
