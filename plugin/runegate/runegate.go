// Package runegate is a CoreDNS plugin that fails .rune queries closed until
// the node's data path is ready.
//
// DNS must not hand out a VIP the data path cannot carry yet ("DNS works,
// connections hang"), and it must never say NXDOMAIN for a name it has merely
// not loaded: a negative answer is cached by clients for the SOA minimum, a
// SERVFAIL is retried. So until every check in the node runtime's readiness
// registry passes, the gate answers SERVFAIL with an Extended DNS Error
// (RFC 8914) "Not Ready" whose EXTRA-TEXT lists what is still missing.
package runegate

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"

	"github.com/runenet/runenet/plugin/pkg/ede"
)

// Gate is the runegate handler.
type Gate struct {
	Next plugin.Handler
	// Zones are the (lower-case, fully qualified) zones the gate holds back;
	// queries for other names pass straight through, so forwarding works
	// before the data path is up.
	Zones []string
	// Check reports whether the data path can carry traffic and, if not,
	// what is failing: the node runtime's readiness registry in runed.
	Check func() (bool, []string)

	// openUntil (unix nanos) caches a passing Check: running every
	// subsystem's check on every query cost over a tenth of runed's CPU
	// under load. A failing Check is never cached, so the gate opens on the
	// first query after the data path is ready, and closes at most
	// recheckOpen late (the rune plugin checks its own view on every query).
	openUntil atomic.Int64
}

const recheckOpen = 50 * time.Millisecond

// Name implements plugin.Handler.
func (g *Gate) Name() string { return "runegate" }

// ServeDNS implements plugin.Handler.
func (g *Gate) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if !g.gates(r.Question[0].Name) {
		return plugin.NextOrFailure(g.Name(), g.Next, ctx, w, r)
	}
	if ok, failing := g.Open(); !ok {
		heldBack.Inc()
		return ede.ServFail(w, r, dns.ExtendedErrorCodeNotReady, "rune: data path not ready: "+strings.Join(failing, "; "))
	}
	return plugin.NextOrFailure(g.Name(), g.Next, ctx, w, r)
}

// Open reports whether the gate lets queries through and, if not, what is
// failing. The rune plugin's fast path asks it too, once per batch of
// packets, and leaves everything to the full chain while it is closed.
func (g *Gate) Open() (bool, []string) {
	now := time.Now().UnixNano()
	if now < g.openUntil.Load() {
		return true, nil
	}
	ok, failing := g.check()
	if ok {
		g.openUntil.Store(now + int64(recheckOpen))
	}
	return ok, failing
}

// check runs Check and shows its outcome in rune_dns_gate_open.
func (g *Gate) check() (bool, []string) {
	ok, failing := g.Check()
	setOpen(ok)
	return ok, failing
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
