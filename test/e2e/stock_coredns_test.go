package e2e

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestStockCoreDNSBuild builds CoreDNS's standard plugin list plus plugin/rune
// (test/stockcoredns, the plugin.cfg one-liner) without cgo and checks the
// binary registers the rune directive.
func TestStockCoreDNSBuild(t *testing.T) {
	bin := buildStockCoreDNS(t)
	out, err := exec.Command(bin, "-plugins").Output()
	if err != nil {
		t.Fatalf("%s -plugins: %v", bin, err)
	}
	plugins := strings.Fields(string(out))
	for _, want := range []string{"rune", "kubernetes", "forward", "file", "etcd"} {
		if !slices.Contains(plugins, want) {
			t.Errorf("-plugins lacks %q:\n%s", want, out)
		}
	}
	// The build settings go records prove the binary was linked without cgo,
	// rather than trusting the environment the test asked for.
	info, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	if !strings.Contains(string(info), "CGO_ENABLED=0") {
		t.Errorf("stock CoreDNS build settings lack CGO_ENABLED=0:\n%s", info)
	}
}

// TestStockCoreDNS runs a stock CoreDNS with `rune { endpoint }` against a
// runed in a namespace: it must answer exactly as runed does, keep answering
// from its last view after runed dies until the stale budget, then fail closed
// with an EDE, and recover — new casts included — once runed is back, without
// being restarted itself.
func TestStockCoreDNS(t *testing.T) {
	n := newDNSNode(t)
	s := newStockNode(t, n)
	n.start(t)
	n.waitSOA(t, 20*time.Second)
	vips := s.n.cast(t, dnsServices)
	api := vips["default/api"]
	if api == "" || vips["jobs/db"] == "" {
		t.Fatalf("cast gave VIPs %v", vips)
	}
	n.waitAnswer(t, "api.default.rune.", 5*time.Second)
	s.start(t)
	s.waitSameSOA(t, 20*time.Second)

	apiRev, _ := dns.ReverseAddr(api)
	dbRev, _ := dns.ReverseAddr(vips["jobs/db"])
	t.Run("same answers", func(t *testing.T) {
		for _, q := range []struct {
			name  string
			qtype uint16
		}{
			{"api.default.rune.", dns.TypeA},
			{"API.Default.Rune.", dns.TypeA},
			{"db.jobs.rune.", dns.TypeA},
			{"api.default.rune.", dns.TypeAAAA},
			{"default.rune.", dns.TypeA},
			{"_http._tcp.api.default.rune.", dns.TypeSRV},
			{"_dns._udp.api.default.rune.", dns.TypeSRV},
			{"_pg._tcp.db.jobs.rune.", dns.TypeSRV},
			{apiRev, dns.TypePTR},
			{dbRev, dns.TypePTR},
			{"nope.default.rune.", dns.TypeA},
			{"_nope._tcp.api.default.rune.", dns.TypeSRV},
			{"rune.", dns.TypeSOA},
		} {
			for _, proto := range []string{"udp", "tcp"} {
				want := n.ask(t, proto, q.name, q.qtype)
				got := s.ask(t, proto, q.name, q.qtype)
				if d := stockDiff(want, got); d != "" {
					t.Errorf("%s %s over %s: stock CoreDNS differs from runed: %s\nruned:\n%v\nstock:\n%v",
						dns.TypeToString[q.qtype], q.name, proto, d, want, got)
				}
			}
		}
		// The cases above must cover what they claim to, or equal answers prove little.
		for _, c := range []struct {
			name  string
			qtype uint16
			rcode int
			n     int
		}{
			{"api.default.rune.", dns.TypeA, dns.RcodeSuccess, 1},
			{"api.default.rune.", dns.TypeAAAA, dns.RcodeSuccess, 0},
			{"_http._tcp.api.default.rune.", dns.TypeSRV, dns.RcodeSuccess, 1},
			{apiRev, dns.TypePTR, dns.RcodeSuccess, 1},
			{"nope.default.rune.", dns.TypeA, dns.RcodeNameError, 0},
		} {
			if m := s.ask(t, "udp", c.name, c.qtype); m.Rcode != c.rcode || len(m.Answer) != c.n {
				t.Errorf("stock %s %s: %s with %d answers, want %s with %d", dns.TypeToString[c.qtype], c.name,
					dns.RcodeToString[m.Rcode], len(m.Answer), dns.RcodeToString[c.rcode], c.n)
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		code, body := n.httpGet(t, "http://"+stockMetricsAddr+"/metrics")
		for _, want := range []string{"rune_dataplane_stale_seconds 0", `rune_dns_responses_total{result="answer"}`} {
			if code != 200 || !strings.Contains(body, want) {
				t.Errorf("stock /metrics (%d) lacks %q", code, want)
			}
		}
	})

	t.Run("runed killed and restarted", func(t *testing.T) {
		// SIGKILL: no graceful goodbye on the watch stream, as in a crash.
		if err := n.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		n.cmd.Wait()
		killed := time.Now()
		if m := s.ask(t, "udp", "api.default.rune.", dns.TypeA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
			t.Errorf("right after runed died: %v; want the last view's answer until the stale budget", m)
		}
		m := s.waitRcode(t, "api.default.rune.", dns.RcodeServerFailure, stockStaleBudget+5*time.Second)
		// The view was current at the last heartbeat before the kill (every
		// 200ms), so the budget may run out that much before budget-after-kill.
		el := time.Since(killed)
		if el < stockStaleBudget-time.Second {
			t.Errorf("SERVFAIL %s after runed died; the stale budget is %s", el.Round(time.Millisecond), stockStaleBudget)
		}
		t.Logf("failing closed %s after runed died (stale budget %s)", el.Round(time.Millisecond), stockStaleBudget)
		if e := ede(m); e == nil || e.InfoCode != dns.ExtendedErrorCodeNotReady || !strings.Contains(e.ExtraText, "behind") {
			t.Errorf("stale SERVFAIL carries EDE %v; want Not Ready (14) explaining the lag", e)
		}
		// Failing closed means no NXDOMAIN either: the view cannot know.
		if m := s.ask(t, "udp", "nope.default.rune.", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
			t.Errorf("unknown name while stale: %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
		}

		n.start(t)
		restarted := time.Now()
		s.waitRcode(t, "api.default.rune.", dns.RcodeSuccess, 20*time.Second)
		t.Logf("stock CoreDNS answering again %s after runed restarted", time.Since(restarted).Round(time.Millisecond))
		if s.cmd.ProcessState != nil {
			t.Fatalf("stock CoreDNS exited: %v", s.cmd.ProcessState)
		}

		vip := s.n.cast(t, `services:
  - name: late
    namespace: default
    ports:
      - port: 80
`)["default/late"]
		cast := time.Now()
		r := s.waitRcode(t, "late.default.rune.", dns.RcodeSuccess, 5*time.Second)
		if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != vip {
			t.Fatalf("late.default.rune. through stock CoreDNS: %v, want A %s", r, vip)
		}
		t.Logf("cast after restart visible through stock CoreDNS in %s", time.Since(cast).Round(time.Millisecond))
		s.waitSameSOA(t, 5*time.Second)
		for _, q := range []string{"late.default.rune.", "api.default.rune."} {
			if d := stockDiff(n.ask(t, "udp", q, dns.TypeA), s.ask(t, "udp", q, dns.TypeA)); d != "" {
				t.Errorf("%s after restart: %s", q, d)
			}
		}
	})
}
