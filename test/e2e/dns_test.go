package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const dnsServices = `services:
  - name: api
    namespace: default
    ports:
      - name: http
        port: 8080
      - name: dns
        port: 53
        protocol: udp
  - name: db
    namespace: jobs
    ports:
      - name: pg
        port: 5432
`

// TestDNS runs runed from its own printed Corefile inside a network
// namespace, casts services through the CLI and checks every record type,
// forwarding, truncation, metrics, the readiness gate and stale budget, a
// reload of an edited Corefile, and a restart.
//
// It runs twice: with the rune plugin's UDP fast path (the default) and with
// `fastpath off`, every query through CoreDNS's server and plugin chain.
func TestDNS(t *testing.T) {
	for _, fastpath := range []bool{true, false} {
		t.Run(fmt.Sprintf("fastpath %v", fastpath), func(t *testing.T) { testDNS(t, fastpath) })
	}
}

func testDNS(t *testing.T, fastpath bool) {
	n := newDNSNode(t)
	if !fastpath {
		n.editCorefile(t, "\t\tttl 5\n", "\t\tttl 5\n\t\tfastpath off\n")
	}
	n.start(t)
	n.waitSOA(t, 20*time.Second)
	// From -conf, the start-up block says what the node runtime runs and
	// leaves the rest to the Corefile.
	checkStartupBlock(t, n.log.String(), []string{
		"[INFO] runed is running (production) as node ",
		"\n  API           unix://" + n.dataDir + "/runed.sock\n",
		"\n  DNS           " + dnsAddr + "; .rune names answer service VIPs\n",
		"\n  Corefile      " + n.corefile + " (metrics, ready, ingress and forwarding as it sets them)\n",
		"\n  cluster CIDR  10.96.0.0/16\n",
	})
	vips := n.cast(t, dnsServices)
	api, db := vips["default/api"], vips["jobs/db"]
	if api == "" || db == "" {
		t.Fatalf("cast gave VIPs %v", vips)
	}
	n.waitAnswer(t, "api.default.rune.", 5*time.Second)
	apiRev, _ := dns.ReverseAddr(api)

	t.Run("records", func(t *testing.T) {
		soa := func(m *dns.Msg) bool { return len(m.Ns) == 1 && m.Ns[0].Header().Rrtype == dns.TypeSOA }
		tests := []struct {
			name  string
			qtype uint16
			rcode int
			check func(*dns.Msg) bool
		}{
			{"api.default.rune.", dns.TypeA, dns.RcodeSuccess, func(m *dns.Msg) bool {
				return len(m.Answer) == 1 && m.Answer[0].(*dns.A).A.String() == api && m.Answer[0].Header().Ttl == 5
			}},
			{"API.Default.Rune.", dns.TypeA, dns.RcodeSuccess, func(m *dns.Msg) bool {
				return len(m.Answer) == 1 && m.Answer[0].(*dns.A).A.String() == api
			}},
			{"db.jobs.rune.", dns.TypeA, dns.RcodeSuccess, func(m *dns.Msg) bool {
				return len(m.Answer) == 1 && m.Answer[0].(*dns.A).A.String() == db
			}},
			{"api.default.rune.", dns.TypeAAAA, dns.RcodeSuccess, func(m *dns.Msg) bool { return len(m.Answer) == 0 && soa(m) }},
			{"default.rune.", dns.TypeA, dns.RcodeSuccess, func(m *dns.Msg) bool { return len(m.Answer) == 0 && soa(m) }},
			{"nope.default.rune.", dns.TypeA, dns.RcodeNameError, soa},
			{"_http._tcp.api.default.rune.", dns.TypeSRV, dns.RcodeSuccess, func(m *dns.Msg) bool {
				srv, ok := m.Answer[0].(*dns.SRV)
				return len(m.Answer) == 1 && ok && srv.Port == 8080 && srv.Target == "api.default.rune." &&
					len(m.Extra) >= 1 && m.Extra[0].(*dns.A).A.String() == api
			}},
			{"_dns._udp.api.default.rune.", dns.TypeSRV, dns.RcodeSuccess, func(m *dns.Msg) bool {
				return len(m.Answer) == 1 && m.Answer[0].(*dns.SRV).Port == 53
			}},
			{apiRev, dns.TypePTR, dns.RcodeSuccess, func(m *dns.Msg) bool {
				return len(m.Answer) == 1 && m.Answer[0].(*dns.PTR).Ptr == "api.default.rune."
			}},
			{"rune.", dns.TypeSOA, dns.RcodeSuccess, func(m *dns.Msg) bool { return len(m.Answer) == 1 && m.Authoritative }},
			{"rune.", dns.TypeNS, dns.RcodeSuccess, func(m *dns.Msg) bool {
				return len(m.Answer) == 1 && m.Answer[0].(*dns.NS).Ns == "ns.dns.rune." &&
					len(m.Extra) >= 1 && m.Extra[0].(*dns.A).A.String() == "127.0.0.123"
			}},
			// Everything else is forwarded to /etc/resolv.conf's upstream.
			{"www.example.org.", dns.TypeA, dns.RcodeSuccess, func(m *dns.Msg) bool {
				return len(m.Answer) == 1 && m.Answer[0].(*dns.A).A.String() == upstreamA
			}},
			{"nothing.example.net.", dns.TypeA, dns.RcodeNameError, func(*dns.Msg) bool { return true }},
		}
		for _, proto := range []string{"udp", "tcp"} {
			for _, tc := range tests {
				m := n.ask(t, proto, tc.name, tc.qtype)
				if m.Rcode != tc.rcode || !tc.check(m) {
					t.Errorf("%s %s over %s:\n%v", dns.TypeToString[tc.qtype], tc.name, proto, m)
				}
			}
		}
	})

	t.Run("truncation", func(t *testing.T) {
		// 512 bytes without EDNS0: the reply must say TC, and TCP carries it all.
		r, err := n.query(t, "udp", new(dns.Msg).SetQuestion("big.example.org.", dns.TypeTXT))
		if err != nil || !r.Truncated {
			t.Errorf("UDP without EDNS0: %v, truncated %v; want TC", err, r != nil && r.Truncated)
		}
		if r := n.ask(t, "tcp", "big.example.org.", dns.TypeTXT); len(r.Answer) != bigTXTs {
			t.Errorf("TCP: %d TXT records, want %d", len(r.Answer), bigTXTs)
		}
	})

	t.Run("dig", func(t *testing.T) {
		if _, err := exec.LookPath("dig"); err != nil {
			if os.Getenv("RUNE_E2E") != "" {
				t.Fatal("dig not installed (make deps installs dnsutils)")
			}
			t.Skip("dig not installed")
		}
		for _, q := range []struct{ args, want string }{
			{"+short api.default.rune", api},
			{"+short -x " + api, "api.default.rune."},
			{"+short SRV _http._tcp.api.default.rune", "0 100 8080 api.default.rune."},
			{"+short +tcp db.jobs.rune", db},
		} {
			out := n.ns.Run(t, append([]string{"dig", "@127.0.0.123"}, strings.Fields(q.args)...)...)
			if strings.TrimSpace(out) != q.want {
				t.Errorf("dig %s: %q, want %q", q.args, out, q.want)
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		code, body := n.httpGet(t, "http://127.0.0.1:9100/metrics")
		for _, want := range []string{`rune_dns_responses_total{result="answer"}`, "rune_dataplane_stale_seconds", "rune_dns_gate_open 1", "coredns_dns_requests_total"} {
			if code != 200 || !strings.Contains(body, want) {
				t.Errorf("/metrics (%d) lacks %s", code, want)
			}
		}
		// The fast path answered (most of) the queries above, or none.
		if answered := n.fastAnswered(t); (answered > 0) != fastpath {
			t.Errorf("fast path %v, but it answered %v queries", fastpath, answered)
		}
	})

	t.Run("stale budget", func(t *testing.T) {
		n.cli(t, "debug", "pause-watch", "6s")
		m := n.waitRcode(t, "api.default.rune.", dns.RcodeServerFailure, 5*time.Second)
		if e := ede(m); e == nil || e.InfoCode != dns.ExtendedErrorCodeNotReady || !strings.Contains(e.ExtraText, "behind") {
			t.Errorf("stale SERVFAIL carries EDE %v; want Not Ready (14) explaining the lag", e)
		}
		if code, _ := n.httpGet(t, "http://127.0.0.1:8181/ready"); code != 503 {
			t.Errorf("/ready while stale: %d, want 503", code)
		}
		// Names outside .rune are not held back.
		if m := n.ask(t, "udp", "www.example.org.", dns.TypeA); m.Rcode != dns.RcodeSuccess {
			t.Errorf("forwarding while stale: %s", dns.RcodeToString[m.Rcode])
		}
		n.waitRcode(t, "api.default.rune.", dns.RcodeSuccess, 10*time.Second)
		if code, _ := n.httpGet(t, "http://127.0.0.1:8181/ready"); code != 200 {
			t.Errorf("/ready after recovery: %d, want 200", code)
		}
	})

	t.Run("reload", func(t *testing.T) {
		var failures, reloaded atomic.Int64
		var last atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				m, err := n.query(t, "udp", new(dns.Msg).SetQuestion("api.default.rune.", dns.TypeA))
				if err != nil || m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != api {
					failures.Add(1)
					last.Store(m)
				} else if m.Answer[0].Header().Ttl == 7 {
					reloaded.Add(1)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
		n.editCorefile(t, "\t\tttl 5\n", "\t\tttl 7\n")
		deadline := time.Now().Add(20 * time.Second)
		for n.ask(t, "udp", "db.jobs.rune.", dns.TypeA).Answer[0].Header().Ttl != 7 {
			if time.Now().After(deadline) {
				t.Fatal("the edited Corefile (ttl 7) was not picked up by reload")
			}
			time.Sleep(100 * time.Millisecond)
		}
		// The old server shuts down after the new one answers: keep asking
		// through that, until 100 answers have come from the new config.
		for reloaded.Load() < 100 {
			if time.Now().After(deadline) {
				t.Fatalf("only %d answers with the new ttl 20s after the edit", reloaded.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
		close(stop)
		wg.Wait()
		if f := failures.Load(); f > 0 {
			t.Errorf("%d queries failed or went wrong across the reload; last: %v", f, last.Load())
		}
		// The reloaded block's fast path gets every packet again.
		if fastpath {
			before := n.fastAnswered(t)
			for range 20 {
				n.ask(t, "udp", "api.default.rune.", dns.TypeA)
			}
			if got := n.fastAnswered(t) - before; got < 20 {
				t.Errorf("after the reload the fast path answered %v of 20 queries", got)
			}
		}
	})

	t.Run("restart", func(t *testing.T) {
		// From the first reply on, a name that exists is SERVFAIL (not ready
		// yet) or answered: never NXDOMAIN.
		n.stop(t)
		n.start(t)
		start := time.Now()
		deadline := start.Add(20 * time.Second)
		for {
			m, err := n.query(t, "udp", new(dns.Msg).SetQuestion("api.default.rune.", dns.TypeA))
			if err == nil && m.Rcode == dns.RcodeNameError {
				t.Fatalf("NXDOMAIN for an existing service during start-up: %v", m)
			}
			if err == nil && m.Rcode == dns.RcodeSuccess && len(m.Answer) == 1 {
				t.Logf("answering %s after start", time.Since(start).Round(time.Millisecond))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no answer after restart: %v %v", m, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// waitSOA waits until runed answers at all (rune. SOA).
func (n *dnsNode) waitSOA(t *testing.T, timeout time.Duration) {
	t.Helper()
	n.waitRcode(t, "rune.", dns.RcodeSuccess, timeout)
}

// waitRcode polls name (type A, EDNS0) until the reply has rcode.
func (n *dnsNode) waitRcode(t *testing.T, name string, rcode int, timeout time.Duration) *dns.Msg {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := new(dns.Msg).SetQuestion(name, dns.TypeSOA)
		if name != "rune." {
			m.Question[0].Qtype = dns.TypeA
		}
		m.SetEdns0(1232, false)
		r, err := n.query(t, "udp", m)
		if err == nil && r.Rcode == rcode {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s within %s (last %v, %v)", name, dns.RcodeToString[rcode], timeout, r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
