package rune

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/metrics"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	_ "github.com/coredns/coredns/plugin/whoami"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/corefile"
	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/node/nodeconfig"
	_ "github.com/runenet/runenet/plugin/runegate"
)

// servers are two rune blocks of one in-process CoreDNS on one node
// runtime, the same plugins in each: fast on the fast path, full with
// `fastpath off`, so every reply of one can be compared with the other's.
type servers struct {
	fast, full string
	rep        *strings.Replacer
	rt         *node.Runtime
	core       *coreDNS
	corefile   string
}

// freePort returns a port of 127.0.0.1 (or host) free for both TCP and UDP
// (a DNS server listens on both).
func freePort(t testing.TB, host ...string) int {
	t.Helper()
	h := "127.0.0.1"
	if len(host) > 0 {
		h = host[0]
	}
	for range 100 {
		l, err := net.Listen("tcp", net.JoinHostPort(h, "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		c, err := net.ListenPacket("udp", net.JoinHostPort(h, fmt.Sprint(port)))
		l.Close()
		if err == nil {
			c.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// startCoreDNS runs corefile in this process, with runed's directive order.
// coreDNS is a running CoreDNS instance; reload replaces it as the reload
// plugin does.
type coreDNS struct{ inst *caddy.Instance }

func (c *coreDNS) reload(t testing.TB, cf string) {
	t.Helper()
	inst, err := c.inst.Restart(caddy.CaddyfileInput{Contents: []byte(cf), Filepath: "Corefile", ServerTypeName: "dns"})
	if err != nil {
		t.Fatal(err)
	}
	c.inst = inst
}

func startCoreDNS(t testing.TB, cf string) *coreDNS {
	t.Helper()
	// runed links the in-process mode in (plugin/rune/inprocess, which
	// imports this package): the node runtime, opened the same way.
	SetLocal(func(cfg nodeconfig.Config) (*cluster.View, func() error, error) {
		rt, err := node.Acquire(cfg)
		if err != nil {
			return nil, nil, err
		}
		return rt.View(), rt.Release, nil
	})
	t.Cleanup(func() { SetLocal(nil) })
	dnsserver.Directives = corefile.Directives
	dnsserver.Quiet = true
	inst, err := caddy.Start(caddy.CaddyfileInput{Contents: []byte(cf), Filepath: "Corefile", ServerTypeName: "dns"})
	if err != nil {
		t.Fatal(err)
	}
	c := &coreDNS{inst: inst}
	t.Cleanup(func() {
		c.inst.Stop()
		c.inst.ShutdownCallbacks()
	})
	return c
}

// newServers starts the two blocks, extra plugins (e.g. "log") added to
// the fast one's and other server blocks (more, where {port} is the fast
// one's port), and casts testServices.
func newServers(t testing.TB, extra string, more ...string) *servers {
	dir := t.TempDir()
	pf, pm := freePort(t), freePort(t)
	pm2 := freePort(t)
	block := func(port int, opts, plugins string) string {
		return fmt.Sprintf(`rune:%[1]d 10.96.0.0/16:%[1]d {
	bind 127.0.0.1
	rune {
		data_dir %[2]s
		cluster_cidr 10.96.0.0/16
		node_name test
		%[3]s
	}
	runegate
	prometheus 127.0.0.1:%[4]d
	errors
	%[5]s
}
`, port, dir, opts, pm, plugins)
	}
	cf := block(pf, "", extra) + block(pm2, "fastpath off", "")
	for _, b := range more {
		cf += strings.ReplaceAll(b, "{port}", fmt.Sprint(pf)) + "\n"
	}
	core := startCoreDNS(t, cf)
	rt, err := node.Attach(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Release() })
	files := make([]cluster.SourceFile, len(testServices))
	for i, d := range testServices {
		files[i] = cluster.SourceFile{Name: fmt.Sprintf("svc%d.yaml", i), Data: []byte(d)}
	}
	ctx := context.Background()
	_, seq, err := rt.Controller().Cast(ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.View().WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
	vip := func(ns, name string) netip.Addr {
		e, _ := rt.View().Snapshot().Service(cluster.NamespacedName{Namespace: ns, Name: name})
		return e.Value.VIP
	}
	api, web, db := vip("default", "api"), vip("default", "web"), vip("jobs", "db")
	apiRev, _ := dns.ReverseAddr(api.String())
	dbRev, _ := dns.ReverseAddr(db.String())
	s := &servers{
		fast: fmt.Sprintf("127.0.0.1:%d", pf), full: fmt.Sprintf("127.0.0.1:%d", pm2), rt: rt,
		core: core, corefile: cf,
		rep: strings.NewReplacer("{api}", api.String(), "{web}", web.String(), "{db}", db.String(),
			"{api-rev}", apiRev, "{db-rev-upper}", strings.ToUpper(dbRev),
			"{serial}", fmt.Sprint(uint32(rt.View().Snapshot().Seq))),
	}
	return s
}

// exchange sends the raw packet q and returns the raw reply, nil when none
// came within timeout.
func exchange(t testing.TB, addr string, q []byte, timeout time.Duration) []byte {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(q); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(timeout))
	b := make([]byte, 65535)
	n, err := c.Read(b)
	if err != nil {
		return nil
	}
	return b[:n]
}

// variants are the ways a query is asked: flags, EDNS sizes, DO, options.
var variants = []struct {
	name string
	edit func(*dns.Msg)
}{
	{"plain", func(m *dns.Msg) {}},
	{"no RD", func(m *dns.Msg) { m.RecursionDesired = false }},
	{"CD AD", func(m *dns.Msg) { m.CheckingDisabled, m.AuthenticatedData = true, true }},
	{"EDNS 1232", func(m *dns.Msg) { m.SetEdns0(1232, false) }},
	{"EDNS 4096 DO", func(m *dns.Msg) { m.SetEdns0(4096, true) }},
	{"EDNS 100", func(m *dns.Msg) { m.SetEdns0(100, false) }},
	{"EDNS version 1", func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }},
	{"EDNS Z flags", func(m *dns.Msg) { m.SetEdns0(1232, true); m.IsEdns0().Hdr.Ttl |= 0x7fff }},
	{"EDNS NSID", func(m *dns.Msg) {
		m.SetEdns0(1232, false)
		o := m.IsEdns0()
		o.Option = append(o.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	}},
	{"EDNS cookie", func(m *dns.Msg) {
		m.SetEdns0(1232, false)
		o := m.IsEdns0()
		o.Option = append(o.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"})
	}},
	{"opcode status", func(m *dns.Msg) { m.Opcode = dns.OpcodeStatus }},
	{"AA set", func(m *dns.Msg) { m.Authoritative = true }},
}

// TestFastPathEqualsFullChain asks both blocks every conformance query
// (answerTests) in every variant, and a mixed-case spelling of each, and
// wants the same bytes back; the fast block's reply must also be the
// expected one. It fails if the fast path answered nothing.
func TestFastPathEqualsFullChain(t *testing.T) {
	s := newServers(t, "")
	before := testutil.ToFloat64(fastPackets.answered)
	id := uint16(1)
	for _, ac := range answerTests {
		req, tc := ac.request(t, s.rep)
		for _, spell := range []func(string) string{func(n string) string { return n }, mixCase} {
			for _, v := range variants {
				m := req.Copy()
				m.Question[0].Name = spell(m.Question[0].Name)
				v.edit(m)
				m.Id = id
				id++
				q, err := m.Pack()
				if err != nil {
					t.Fatal(err)
				}
				name := fmt.Sprintf("%s %s %s %s", dns.ClassToString[m.Question[0].Qclass], dns.TypeToString[m.Question[0].Qtype], m.Question[0].Name, v.name)
				fast, full := exchange(t, s.fast, q, 5*time.Second), exchange(t, s.full, q, 5*time.Second)
				if !bytes.Equal(fast, full) {
					t.Errorf("%s: fast path and full chain differ\nfast: %v\nfull: %v", name, unpack(fast), unpack(full))
					continue
				}
				if v.name == "plain" && m.Question[0].Name == req.Question[0].Name {
					r := unpack(fast)
					if r == nil {
						t.Errorf("%s: no reply", name)
					} else if err := test.SortAndCheck(r, tc); err != nil {
						t.Errorf("%s: %v", name, err)
					}
				}
			}
		}
	}
	if !fastAnsweredSince(before) {
		t.Fatal("the fast path answered none of the queries: it is not in front")
	}
}

// fastAnsweredSince reports whether the fast path has counted an answer
// past before, waiting for the count a little: a worker counts its batch
// after sending it, so a reply can reach the client before its count.
func fastAnsweredSince(before float64) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if testutil.ToFloat64(fastPackets.answered) > before {
			return true
		}
	}
	return false
}

// mixCase flips the case of every other letter.
func mixCase(n string) string {
	b := []byte(n)
	for i := range b {
		if i%2 == 0 && 'a' <= b[i] && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		} else if i%2 == 0 && 'A' <= b[i] && b[i] <= 'Z' {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}

func unpack(b []byte) *dns.Msg {
	if b == nil {
		return nil
	}
	m := new(dns.Msg)
	if m.Unpack(b) != nil {
		return nil
	}
	return m
}

// TestFastPathCountsAsTheChain checks that the coredns_dns_* series of the
// fast block grow as the full block's do for the same queries.
func TestFastPathCountsAsTheChain(t *testing.T) {
	s := newServers(t, "")
	qs := []*dns.Msg{
		query("api.default.rune.", dns.TypeA, false),
		query("web.default.rune.", dns.TypeAAAA, true),
		query("_http._tcp.api.default.rune.", dns.TypeSRV, false),
		query(s.rep.Replace("{api-rev}"), dns.TypePTR, false),
		query("nope.default.rune.", dns.TypeA, false),
	}
	qs[1].IsEdns0().SetDo()
	before := map[string]map[string]float64{s.fast: dnsSeries(t, s.fast), s.full: dnsSeries(t, s.full)}
	read := func() float64 {
		return testutil.ToFloat64(fastPackets.answered) + testutil.ToFloat64(fastPackets.declined)
	}
	readBefore := read()
	for i := range 3 {
		for _, q := range qs {
			q.Id = uint16(i)
			b, _ := q.Pack()
			if exchange(t, s.fast, b, 5*time.Second) == nil || exchange(t, s.full, b, 5*time.Second) == nil {
				t.Fatalf("no reply to %v", q.Question[0])
			}
		}
	}
	delta := func(addr string) map[string]float64 {
		d := map[string]float64{}
		for k, v := range dnsSeries(t, addr) {
			if v != before[addr][k] {
				d[k] = v - before[addr][k]
			}
		}
		return d
	}
	// Steering: every packet to the address reached the fast path's sockets.
	if got, want := read()-readBefore, float64(3*len(qs)); got != want {
		t.Errorf("the fast path read %v packets of the %v sent to its address", got, want)
	}
	// CoreDNS observes a query's sizes and duration after writing its reply,
	// so a client can hold the reply before the server has counted it: wait
	// for both sides to settle rather than read them once.
	fast, full := delta(s.fast), delta(s.full)
	for deadline := time.Now().Add(5 * time.Second); fmt.Sprint(fast) != fmt.Sprint(full) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		fast, full = delta(s.fast), delta(s.full)
	}
	if fmt.Sprint(fast) != fmt.Sprint(full) {
		t.Errorf("metrics differ\nfast: %v\nfull: %v", fast, full)
	}
	if len(fast) == 0 {
		t.Error("no coredns_dns_* series moved")
	}
}

// dnsSeries flattens the coredns_dns_* series of server addr: counters by
// value, histograms by sample count (and sum, for sizes), labels but the
// server's.
func dnsSeries(t testing.TB, addr string) map[string]float64 {
	t.Helper()
	fams, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if !strings.HasPrefix(f.GetName(), "coredns_dns_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			mine := false
			for _, l := range m.GetLabel() {
				if l.GetName() == "server" {
					mine = l.GetValue() == "dns://"+addr
					continue
				}
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			if !mine {
				continue
			}
			sort.Strings(labels)
			k := f.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[k] = m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[k+" count"] = float64(m.GetHistogram().GetSampleCount())
				if !strings.Contains(f.GetName(), "duration") {
					out[k+" sum"] = m.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	return out
}

// TestFastPathStepsAsideForOtherPlugins: a block with log (which must see
// every query) gets no fast path.
func TestFastPathStepsAsideForOtherPlugins(t *testing.T) {
	s := newServers(t, "log")
	before := testutil.ToFloat64(fastPackets.answered) + testutil.ToFloat64(fastPackets.declined)
	b, _ := query("api.default.rune.", dns.TypeA, false).Pack()
	if r := unpack(exchange(t, s.fast, b, 5*time.Second)); r == nil || len(r.Answer) != 1 {
		t.Fatalf("reply %v, want the A record", r)
	}
	if after := testutil.ToFloat64(fastPackets.answered) + testutil.ToFloat64(fastPackets.declined); after != before {
		t.Errorf("the fast path read %v packets of a block with log", after-before)
	}
}

// TestFastPathFailsClosedWithTheGate: while the data path is not ready the
// fast block answers the gate's SERVFAIL, as the full one does, and answers
// again once it is.
func TestFastPathFailsClosedWithTheGate(t *testing.T) {
	s := newServers(t, "")
	q := query("api.default.rune.", dns.TypeA, true)
	b, _ := q.Pack()
	s.rt.Readiness().Register("fastpath-test", func() (bool, string) { return false, "test: not ready" })
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := unpack(exchange(t, s.fast, b, 5*time.Second))
		if r != nil && r.Rcode == dns.RcodeServerFailure {
			if full := exchange(t, s.full, b, 5*time.Second); !bytes.Equal(full, exchange(t, s.fast, b, 5*time.Second)) {
				t.Errorf("gate closed: fast and full replies differ: %v", unpack(full))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %v 10s after the data path stopped being ready", r)
		}
	}
	s.rt.Readiness().Unregister("fastpath-test")
	for {
		r := unpack(exchange(t, s.fast, b, 5*time.Second))
		if r != nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %v after the data path was ready again", r)
		}
	}
}

// TestFastPathMutatedQueries sends both blocks the conformance queries with
// random bytes changed (a fixed seed) and wants the same reply, or none
// from either.
func TestFastPathMutatedQueries(t *testing.T) {
	s := newServers(t, "")
	var seeds [][]byte
	for _, ac := range answerTests {
		req, _ := ac.request(t, s.rep)
		for _, v := range variants {
			m := req.Copy()
			v.edit(m)
			b, _ := m.Pack()
			seeds = append(seeds, b)
		}
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		q := append([]byte(nil), seeds[rnd.IntN(len(seeds))]...)
		for range 1 + rnd.IntN(3) {
			q[rnd.IntN(len(q))] = byte(rnd.IntN(256))
		}
		fast, full := exchange(t, s.fast, q, 200*time.Millisecond), exchange(t, s.full, q, 200*time.Millisecond)
		if !bytes.Equal(fast, full) {
			// One may only have been slow on this loaded machine: ask again.
			fast, full = exchange(t, s.fast, q, 3*time.Second), exchange(t, s.full, q, 3*time.Second)
		}
		if !bytes.Equal(fast, full) {
			t.Fatalf("query %x: fast path and full chain differ\nfast: %v\nfull: %v", q, unpack(fast), unpack(full))
		}
	}
}

// FuzzFastPath: for any packet the fast path would answer, its reply is
// the bytes the chain (behind CoreDNS's scrub writer) writes for it, and
// miekg/dns parses the packet as the same query.
//
//	go test ./plugin/rune -run '^$' -fuzz FuzzFastPath -fuzztime 30s
func FuzzFastPath(f *testing.F) {
	c, rep := withServices(f, time.Minute)
	for _, ac := range answerTests {
		req, _ := ac.request(f, rep)
		for _, v := range variants {
			m := req.Copy()
			v.edit(m)
			b, _ := m.Pack()
			f.Add(b)
		}
	}
	r := c.handler()
	f.Fuzz(func(t *testing.T, p []byte) {
		q, key, ok := parseQuery(p, nil)
		if !ok {
			return
		}
		a := r.render(c.view.Snapshot(), keyName(key), q.qtype)
		if a == nil {
			return
		}
		fast := a.write(nil, p, q)
		req := new(dns.Msg)
		if err := req.Unpack(p); err != nil {
			t.Fatalf("the fast path answers %x, which miekg/dns rejects: %v", p, err)
		}
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		r.ServeDNS(context.Background(), request.NewScrubWriter(req, rec), req)
		full, err := rec.Msg.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fast, full) {
			t.Fatalf("query %x: fast path and chain differ\nfast: %v\nfull: %v", p, unpack(fast), rec.Msg)
		}
	})
}

// TestFastPathIPv6 serves a block bound to ::1 from the fast path.
func TestFastPathIPv6(t *testing.T) {
	port := freePort(t, "::1")
	dir := t.TempDir()
	startCoreDNS(t, fmt.Sprintf("rune:%d {\n\tbind ::1\n\trune {\n\t\tdata_dir %s\n\t\tnode_name test\n\t}\n\terrors\n}\n", port, dir))
	rt, err := node.Attach(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Release()
	ctx := context.Background()
	_, seq, err := rt.Controller().Cast(ctx, []cluster.SourceFile{{Name: "api.yaml", Data: []byte(service("default", "api"))}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.View().WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
	before := testutil.ToFloat64(fastPackets.answered)
	b, _ := query("api.default.rune.", dns.TypeA, true).Pack()
	if r := unpack(exchange(t, fmt.Sprintf("[::1]:%d", port), b, 5*time.Second)); r == nil || len(r.Answer) != 1 {
		t.Fatalf("api.default.rune. A over ::1: %v", r)
	}
	if !fastAnsweredSince(before) {
		t.Error("the fast path did not answer over IPv6")
	}
}
