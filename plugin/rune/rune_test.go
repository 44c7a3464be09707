package rune

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	"github.com/runenet/runenet/cluster"
)

// answerCase is a test.Case written with placeholders (see withServices),
// since VIPs and the serial come from the cluster.
type answerCase struct {
	qname             string
	qtype             uint16
	qclass            uint16 // 0: IN
	rcode             int
	answer, ns, extra []string
}

// request is the query of c, and the test.Case its reply must match.
func (c answerCase) request(t testing.TB, rep *strings.Replacer) (*dns.Msg, test.Case) {
	tc := c.resolve(t, rep)
	m := tc.Msg()
	if c.qclass != 0 {
		m.Question[0].Qclass = c.qclass
	}
	return m, tc
}

func (c answerCase) resolve(t testing.TB, rep *strings.Replacer) test.Case {
	rrs := func(ss []string) []dns.RR {
		var out []dns.RR
		for _, s := range ss {
			rr, err := dns.NewRR(rep.Replace(s))
			if err != nil {
				t.Fatalf("%s: %v", s, err)
			}
			out = append(out, rr)
		}
		return out
	}
	return test.Case{Qname: rep.Replace(c.qname), Qtype: c.qtype, Rcode: c.rcode, Answer: rrs(c.answer), Ns: rrs(c.ns), Extra: rrs(c.extra)}
}

const (
	soaRune = "rune. 5 IN SOA ns.dns.rune. hostmaster.rune. {serial} 7200 1800 86400 5"
	soaRev  = "96.10.in-addr.arpa. 5 IN SOA ns.dns.rune. hostmaster.rune. {serial} 7200 1800 86400 5"
	nx      = dns.RcodeNameError
	refused = dns.RcodeRefused
)

var (
	nsRune = []string{soaRune}
	nsRev  = []string{soaRev}
)

var answerTests = []answerCase{
	// A, in any case, the reply keeping the asker's spelling.
	{qname: "api.default.rune.", qtype: dns.TypeA, answer: []string{"api.default.rune. 5 IN A {api}"}},
	{qname: "API.Default.RUNE.", qtype: dns.TypeA, answer: []string{"API.Default.RUNE. 5 IN A {api}"}},
	{qname: "db.jobs.rune.", qtype: dns.TypeA, answer: []string{"db.jobs.rune. 5 IN A {db}"}},
	// Existing names without the asked type: NODATA with the SOA.
	{qname: "api.default.rune.", qtype: dns.TypeAAAA, ns: nsRune},
	{qname: "api.default.rune.", qtype: dns.TypeTXT, ns: nsRune},
	{qname: "api.default.rune.", qtype: dns.TypeSRV, ns: nsRune},
	// Empty non-terminals: a namespace, a protocol under a service.
	{qname: "default.rune.", qtype: dns.TypeA, ns: nsRune},
	{qname: "_tcp.api.default.rune.", qtype: dns.TypeSRV, ns: nsRune},
	{qname: "_udp.api.default.rune.", qtype: dns.TypeA, ns: nsRune},
	// Unknown names: NXDOMAIN with the SOA.
	{qname: "nope.default.rune.", qtype: dns.TypeA, rcode: nx, ns: nsRune},
	{qname: "nons.rune.", qtype: dns.TypeA, rcode: nx, ns: nsRune},
	{qname: "x.api.default.rune.", qtype: dns.TypeA, rcode: nx, ns: nsRune},
	{qname: "_udp.web.default.rune.", qtype: dns.TypeSRV, rcode: nx, ns: nsRune},
	{qname: "_sctp.api.default.rune.", qtype: dns.TypeSRV, rcode: nx, ns: nsRune},
	{qname: "_http._udp.api.default.rune.", qtype: dns.TypeSRV, rcode: nx, ns: nsRune},
	{qname: "x._http._tcp.api.default.rune.", qtype: dns.TypeSRV, rcode: nx, ns: nsRune},
	{qname: "http._tcp.api.default.rune.", qtype: dns.TypeSRV, rcode: nx, ns: nsRune},
	// SRV by port name (Kubernetes style), by number for an unnamed port.
	{qname: "_http._tcp.api.default.rune.", qtype: dns.TypeSRV,
		answer: []string{"_http._tcp.api.default.rune. 5 IN SRV 0 100 8080 api.default.rune."},
		extra:  []string{"api.default.rune. 5 IN A {api}"}},
	{qname: "_DNS._UDP.api.default.rune.", qtype: dns.TypeSRV,
		answer: []string{"_DNS._UDP.api.default.rune. 5 IN SRV 0 100 53 api.default.rune."},
		extra:  []string{"api.default.rune. 5 IN A {api}"}},
	{qname: "_9000._tcp.api.default.rune.", qtype: dns.TypeSRV,
		answer: []string{"_9000._tcp.api.default.rune. 5 IN SRV 0 100 9000 api.default.rune."},
		extra:  []string{"api.default.rune. 5 IN A {api}"}},
	{qname: "_http._tcp.api.default.rune.", qtype: dns.TypeA, ns: nsRune},
	// The apex and its name server.
	{qname: "rune.", qtype: dns.TypeSOA, answer: []string{soaRune}},
	{qname: "rune.", qtype: dns.TypeNS, answer: []string{"rune. 5 IN NS ns.dns.rune."}, extra: []string{"ns.dns.rune. 5 IN A 127.0.0.1"}},
	{qname: "rune.", qtype: dns.TypeA, ns: nsRune},
	{qname: "ns.dns.rune.", qtype: dns.TypeA, answer: []string{"ns.dns.rune. 5 IN A 127.0.0.1"}},
	{qname: "ns.dns.rune.", qtype: dns.TypeAAAA, ns: nsRune},
	{qname: "dns.rune.", qtype: dns.TypeA, ns: nsRune},
	// The reverse zone of the cluster CIDR.
	{qname: "{api-rev}", qtype: dns.TypePTR, answer: []string{"{api-rev} 5 IN PTR api.default.rune."}},
	{qname: "{db-rev-upper}", qtype: dns.TypePTR, answer: []string{"{db-rev-upper} 5 IN PTR db.jobs.rune."}},
	{qname: "{api-rev}", qtype: dns.TypeA, ns: nsRev},
	{qname: "0.0.96.10.in-addr.arpa.", qtype: dns.TypePTR, rcode: nx, ns: nsRev}, // never a VIP
	{qname: "0.96.10.in-addr.arpa.", qtype: dns.TypePTR, ns: nsRev},              // VIPs may live below
	{qname: "x.96.10.in-addr.arpa.", qtype: dns.TypePTR, rcode: nx, ns: nsRev},
	{qname: "1.{api-rev}", qtype: dns.TypePTR, rcode: nx, ns: nsRev},
	{qname: "96.10.in-addr.arpa.", qtype: dns.TypeSOA, answer: []string{soaRev}},
	// ANY is answered with the RRset the name has (RFC 8482), never an
	// empty NOERROR for a name that has one.
	{qname: "api.default.rune.", qtype: dns.TypeANY, answer: []string{"api.default.rune. 5 IN A {api}"}},
	{qname: "_http._tcp.api.default.rune.", qtype: dns.TypeANY,
		answer: []string{"_http._tcp.api.default.rune. 5 IN SRV 0 100 8080 api.default.rune."},
		extra:  []string{"api.default.rune. 5 IN A {api}"}},
	{qname: "{api-rev}", qtype: dns.TypeANY, answer: []string{"{api-rev} 5 IN PTR api.default.rune."}},
	{qname: "rune.", qtype: dns.TypeANY, answer: []string{soaRune}},
	{qname: "96.10.in-addr.arpa.", qtype: dns.TypeANY, answer: []string{soaRev}},
	{qname: "ns.dns.rune.", qtype: dns.TypeANY, answer: []string{"ns.dns.rune. 5 IN A 127.0.0.1"}},
	{qname: "default.rune.", qtype: dns.TypeANY, ns: nsRune},
	{qname: "nope.default.rune.", qtype: dns.TypeANY, rcode: nx, ns: nsRune},
	// The zones exist in class IN only: other classes are REFUSED (as BIND
	// and Knot answer), not IN records in a CH reply.
	{qname: "api.default.rune.", qtype: dns.TypeA, qclass: dns.ClassCHAOS, rcode: refused},
	{qname: "api.default.rune.", qtype: dns.TypeA, qclass: dns.ClassHESIOD, rcode: refused},
	{qname: "api.default.rune.", qtype: dns.TypeA, qclass: dns.ClassANY, rcode: refused},
	{qname: "rune.", qtype: dns.TypeSOA, qclass: dns.ClassCHAOS, rcode: refused},
	{qname: "{api-rev}", qtype: dns.TypePTR, qclass: dns.ClassCHAOS, rcode: refused},
	{qname: "nope.default.rune.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS, rcode: refused},
	// No zone transfers.
	{qname: "rune.", qtype: dns.TypeAXFR, rcode: refused},
	{qname: "rune.", qtype: dns.TypeIXFR, rcode: refused},
	{qname: "96.10.in-addr.arpa.", qtype: dns.TypeAXFR, rcode: refused},
	{qname: "96.10.in-addr.arpa.", qtype: dns.TypeIXFR, rcode: refused},
	{qname: "api.default.rune.", qtype: dns.TypeAXFR, rcode: refused},
}

func serve(r *Rune, req *dns.Msg) *dns.Msg {
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	r.ServeDNS(context.Background(), rec, req)
	return rec.Msg
}

func TestServeDNS(t *testing.T) {
	c, rep := withServices(t, time.Minute)
	r := c.handler()
	for _, ac := range answerTests {
		req, tc := ac.request(t, rep)
		t.Run(dns.ClassToString[req.Question[0].Qclass]+" "+dns.TypeToString[tc.Qtype]+" "+tc.Qname, func(t *testing.T) {
			m := serve(r, req)
			if m.Authoritative != (tc.Rcode != refused) {
				t.Errorf("authoritative %v with rcode %s", m.Authoritative, dns.RcodeToString[m.Rcode])
			}
			if err := test.SortAndCheck(m, tc); err != nil {
				t.Error(err)
			}
		})
	}
}

// Names outside rune. and the cluster CIDR's reverse zones go to the next
// plugin untouched.
func TestServeDNSPassesOtherNames(t *testing.T) {
	c, _ := withServices(t, time.Minute)
	r := c.handler()
	r.Next = test.NextHandler(dns.RcodeNotAuth, nil)
	for _, name := range []string{"example.org.", "rune.example.org.", "1.0.97.10.in-addr.arpa.", "notrune.", "1.0.96.10.in-addr.arpa.example."} {
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		rcode, _ := r.ServeDNS(context.Background(), rec, query(name, dns.TypeA, false))
		if rcode != dns.RcodeNotAuth || rec.Msg != nil {
			t.Errorf("%s: rcode %d, reply %v; want it passed to the next plugin", name, rcode, rec.Msg)
		}
	}
	// Other classes and transfers of other zones are not ours to refuse.
	for _, req := range []*dns.Msg{
		{Question: []dns.Question{{Name: "version.bind.", Qtype: dns.TypeTXT, Qclass: dns.ClassCHAOS}}},
		query("example.org.", dns.TypeAXFR, false),
	} {
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		if rcode, _ := r.ServeDNS(context.Background(), rec, req); rcode != dns.RcodeNotAuth || rec.Msg != nil {
			t.Errorf("%v: rcode %d, reply %v; want it passed to the next plugin", req.Question[0], rcode, rec.Msg)
		}
	}
}

// A refusal says why, in an Extended DNS Error, when the query had EDNS0.
func TestRefusedCarriesEDE(t *testing.T) {
	c, _ := withServices(t, time.Minute)
	r := c.handler()
	ch := query("api.default.rune.", dns.TypeA, true)
	ch.Question[0].Qclass = dns.ClassCHAOS
	for _, tc := range []struct {
		req  *dns.Msg
		code uint16
		text string
	}{
		{ch, dns.ExtendedErrorCodeNotAuthoritative, "rune: rune. exists in class IN only"},
		{query("96.10.in-addr.arpa.", dns.TypeAXFR, true), dns.ExtendedErrorCodeProhibited, "rune: zone transfers of 96.10.in-addr.arpa. are not offered"},
	} {
		m := serve(r, tc.req)
		if e := edeOf(m); m.Rcode != refused || e == nil || e.InfoCode != tc.code || e.ExtraText != tc.text {
			t.Errorf("%v: rcode %s, EDE %v; want REFUSED with EDE %d %q", tc.req.Question[0], dns.RcodeToString[m.Rcode], e, tc.code, tc.text)
		}
	}
}

// wildcardWriter is a reply writer of a socket bound to the unspecified
// address (a server block without bind), as miekg/dns reports it over UDP.
type wildcardWriter struct {
	test.ResponseWriter
	local string
}

func (w *wildcardWriter) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.ParseIP(w.local), Port: 53}
}

// Behind a wildcard listener the name server's address is this host's
// address towards the client, never the unspecified address.
func TestNameserverBehindWildcardListener(t *testing.T) {
	c, rep := withServices(t, time.Minute)
	r := c.handler()
	for _, local := range []string{"::", "0.0.0.0", "::ffff:0.0.0.0"} {
		for _, ac := range []answerCase{
			{qname: "rune.", qtype: dns.TypeNS, answer: []string{"rune. 5 IN NS ns.dns.rune."}, extra: []string{"ns.dns.rune. 5 IN A 127.0.0.1"}},
			{qname: "ns.dns.rune.", qtype: dns.TypeA, answer: []string{"ns.dns.rune. 5 IN A 127.0.0.1"}},
			{qname: "ns.dns.rune.", qtype: dns.TypeAAAA, ns: nsRune},
		} {
			req, tc := ac.request(t, rep)
			rec := dnstest.NewRecorder(&wildcardWriter{ResponseWriter: test.ResponseWriter{RemoteIP: "127.0.0.1"}, local: local})
			r.ServeDNS(context.Background(), rec, req)
			if err := test.SortAndCheck(rec.Msg, tc); err != nil {
				t.Errorf("local %s: %s %s: %v\n%v", local, dns.TypeToString[tc.Qtype], tc.Qname, err, rec.Msg)
			}
		}
	}
}

func TestDevModeAnswersLoopback(t *testing.T) {
	c, rep := withServices(t, time.Minute)
	r := c.handler()
	r.DevMode = true
	for _, ac := range []answerCase{
		{qname: "api.default.rune.", qtype: dns.TypeA, answer: []string{"api.default.rune. 5 IN A 127.0.0.1"}},
		{qname: "_http._tcp.api.default.rune.", qtype: dns.TypeSRV,
			answer: []string{"_http._tcp.api.default.rune. 5 IN SRV 0 100 8080 api.default.rune."},
			extra:  []string{"api.default.rune. 5 IN A 127.0.0.1"}},
		{qname: "nope.default.rune.", qtype: dns.TypeA, rcode: nx, ns: nsRune},
	} {
		tc := ac.resolve(t, rep)
		if err := test.SortAndCheck(serve(r, tc.Msg()), tc); err != nil {
			t.Errorf("%s: %v", tc.Qname, err)
		}
	}
}

func TestTTLOption(t *testing.T) {
	c, _ := withServices(t, time.Minute)
	r := c.handler()
	r.TTL = 60
	m := serve(r, query("api.default.rune.", dns.TypeA, false))
	if ttl := m.Answer[0].Header().Ttl; ttl != 60 {
		t.Errorf("answer TTL %d, want 60", ttl)
	}
	soa := serve(r, query("nope.default.rune.", dns.TypeA, false)).Ns[0].(*dns.SOA)
	if soa.Hdr.Ttl != 60 || soa.Minttl != 60 {
		t.Errorf("SOA TTL %d, minimum %d; want 60 (negative answers cached as long as positive ones)", soa.Hdr.Ttl, soa.Minttl)
	}
}

// ede returns the Extended DNS Error of m, if any.
func edeOf(m *dns.Msg) *dns.EDNS0_EDE {
	if o := m.IsEdns0(); o != nil {
		for _, opt := range o.Option {
			if e, ok := opt.(*dns.EDNS0_EDE); ok {
				return e
			}
		}
	}
	return nil
}

func query(name string, qtype uint16, edns bool) *dns.Msg {
	m := new(dns.Msg).SetQuestion(name, qtype)
	if edns {
		m.SetEdns0(1232, false)
	}
	return m
}

func TestNotLoadedIsServfailNotNXDOMAIN(t *testing.T) {
	r := &Rune{TTL: DefaultTTL}
	r.SetView(cluster.NewView(nil, cluster.ViewOptions{})) // never run: never loaded
	if r.Ready() {
		t.Error("Ready() before the view loaded")
	}
	m := serve(r, query("nope.default.rune.", dns.TypeA, true))
	if m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	if e := edeOf(m); e == nil || e.InfoCode != dns.ExtendedErrorCodeNotReady {
		t.Errorf("EDE %v, want Not Ready (14)", e)
	}
	// Without EDNS0 in the query the reply carries no OPT (RFC 6891).
	m = serve(r, query("nope.default.rune.", dns.TypeA, false))
	if m.Rcode != dns.RcodeServerFailure || m.IsEdns0() != nil {
		t.Errorf("rcode %s, OPT %v; want SERVFAIL without OPT", dns.RcodeToString[m.Rcode], m.IsEdns0())
	}
}

func TestStaleBudget(t *testing.T) {
	const budget = 50 * time.Millisecond
	c, _ := withServices(t, budget)
	r := c.handler()

	// Paused until resumed below, however slow this machine is.
	c.view.PauseFor(time.Hour)
	var m *dns.Msg
	for deadline := time.Now().Add(10 * time.Second); ; {
		if m = serve(r, query("api.default.rune.", dns.TypeA, true)); m.Rcode == dns.RcodeServerFailure {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s into a paused watch (budget %s): rcode %s, want SERVFAIL", budget, dns.RcodeToString[m.Rcode])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if e := edeOf(m); e == nil || e.InfoCode != dns.ExtendedErrorCodeNotReady || !strings.Contains(e.ExtraText, "stale budget") {
		t.Errorf("EDE %v, want Not Ready (14) explaining the lag", e)
	}
	if r.Ready() {
		t.Error("Ready() while stale")
	}

	// Recovery needs nothing but the view catching up.
	c.view.PauseFor(0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		m = serve(r, query("api.default.rune.", dns.TypeA, true))
		if m.Rcode == dns.RcodeSuccess && len(m.Answer) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after the pause: rcode %s", dns.RcodeToString[m.Rcode])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A cast is answered by the very next query once the View has applied it:
// nothing is cached in front of the snapshot.
func TestCastResolvesOnNextSnapshot(t *testing.T) {
	c, _ := withServices(t, time.Minute)
	r := c.handler()
	if m := serve(r, query("new.default.rune.", dns.TypeA, false)); m.Rcode != nx {
		t.Fatalf("before the cast: %v", m)
	}
	c.cast(t, service("default", "new"))
	m := serve(r, query("new.default.rune.", dns.TypeA, false))
	if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != c.vip(t, "default", "new").String() {
		t.Errorf("after the cast: %v", m)
	}
}

// A CIDR that is not on an octet boundary spans several reverse zones.
func TestReverseZonesOfWideCIDR(t *testing.T) {
	c := newCluster(t, "10.96.0.0/12", time.Minute)
	c.cast(t, service("default", "api"))
	r := c.handler()
	rev, _ := dns.ReverseAddr(c.vip(t, "default", "api").String())
	m := serve(r, query(rev, dns.TypePTR, false))
	if len(m.Answer) != 1 || m.Answer[0].(*dns.PTR).Ptr != "api.default.rune." {
		t.Errorf("PTR %s: %v", rev, m)
	}
	for _, zone := range []string{"96.10.in-addr.arpa.", "100.10.in-addr.arpa.", "111.10.in-addr.arpa."} {
		m = serve(r, query(zone, dns.TypeSOA, false))
		if len(m.Answer) != 1 || m.Answer[0].Header().Name != zone {
			t.Errorf("SOA %s: %v", zone, m)
		}
	}
}

func BenchmarkServeDNS(b *testing.B) {
	c := newCluster(b, "10.96.0.0/16", time.Minute)
	docs := make([]string, 1000)
	for i := range docs {
		docs[i] = service("default", "svc"+strconv.Itoa(i))
	}
	c.cast(b, docs...)
	r := c.handler()
	req := query("svc500.default.rune.", dns.TypeA, true)
	w := &test.ResponseWriter{}
	b.ReportAllocs()
	for b.Loop() {
		r.ServeDNS(context.Background(), w, req)
	}
}
