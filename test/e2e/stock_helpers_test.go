package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/runenet/runenet/internal/testkit"
)

const (
	// runed's API inside the test's namespace, TCP with a token as a stock
	// CoreDNS on another host would reach it.
	stockAPIAddr  = "127.0.0.1:7070"
	stockAPIToken = "stock-coredns-e2e"
	// What the stock CoreDNS authenticates with: it only lists and watches.
	stockReadToken = "stock-coredns-e2e-read"
	// The stock CoreDNS listens beside runed (127.0.0.123:53) and the
	// upstream (127.0.0.1:53).
	stockDNSAddr     = "127.0.0.1:1053"
	stockMetricsAddr = "127.0.0.1:9253"
	stockStaleBudget = 3 * time.Second
)

// buildStockCoreDNS builds test/stockcoredns with cgo off: a stock CoreDNS
// build must not need it.
func buildStockCoreDNS(t *testing.T) string {
	t.Helper()
	t.Setenv("CGO_ENABLED", "0")
	return testkit.Binary(t, "./test/stockcoredns")
}

// stockNode is a stock CoreDNS in a runed node's namespace, following that
// runed over its TCP API.
type stockNode struct {
	n        *dnsNode
	bin      string
	corefile string
	cmd      *exec.Cmd
	log      *testkit.SyncBuffer
}

// newStockNode moves n's API to TCP with a token and a read-only token (in
// the rune block, whose runtime the other directives use) and writes the
// stock CoreDNS's Corefile, which follows runed with the read-only one.
func newStockNode(t *testing.T, n *dnsNode) *stockNode {
	t.Helper()
	s := &stockNode{n: n, bin: buildStockCoreDNS(t), corefile: filepath.Join(t.TempDir(), "Corefile")}
	b, err := os.ReadFile(n.corefile)
	if err != nil {
		t.Fatal(err)
	}
	node := "\t\tstale_budget 2s\n"
	if strings.Count(string(b), node) != 1 {
		t.Fatalf("runed's Corefile does not have the one node block this test expects:\n%s", b)
	}
	tokens := t.TempDir()
	tokenFile, readTokenFile := filepath.Join(tokens, "api-token"), filepath.Join(tokens, "api-read-token")
	for f, tok := range map[string]string{tokenFile: stockAPIToken, readTokenFile: stockReadToken} {
		if err := os.WriteFile(f, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n.writeCorefile(t, strings.ReplaceAll(string(b), node,
		fmt.Sprintf("\t\tapi tcp://%s\n\t\ttoken_file %s\n\t\tread_token_file %s\n%s", stockAPIAddr, tokenFile, readTokenFile, node)))
	n.api = []string{"--api", "tcp://" + stockAPIAddr, "--token", stockAPIToken}

	// The directive as the plugin's README shows it for a stock CoreDNS.
	corefile := fmt.Sprintf(`rune:1053 10.96.0.0/16:1053 {
	bind 127.0.0.1
	rune {
		endpoint tcp://%s
		token %s
		stale_budget %s
	}
	prometheus %s
	errors
}
`, stockAPIAddr, stockReadToken, stockStaleBudget, stockMetricsAddr)
	if err := os.WriteFile(s.corefile, []byte(corefile), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// start runs the stock CoreDNS inside the namespace until the test ends.
func (s *stockNode) start(t *testing.T) {
	t.Helper()
	s.log = &testkit.SyncBuffer{}
	s.cmd = s.n.ns.Command(s.bin, "-conf", s.corefile)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := s.cmd
	t.Cleanup(func() {
		s.n.stopCmd(cmd)
		if t.Failed() {
			t.Logf("stock CoreDNS output:\n%s", s.log.String())
		}
	})
}

// query asks the stock CoreDNS from inside the namespace.
func (s *stockNode) query(t testing.TB, proto string, m *dns.Msg) (*dns.Msg, error) {
	t.Helper()
	return queryIn(t, s.n.ns, stockDNSAddr, proto, m)
}

// ask is query for name/qtype with EDNS0, failing the test on error.
func (s *stockNode) ask(t testing.TB, proto, name string, qtype uint16) *dns.Msg {
	t.Helper()
	return askIn(t, s.n.ns, stockDNSAddr, proto, name, qtype)
}

// waitRcode polls name (type A, EDNS0) until the stock CoreDNS replies rcode.
func (s *stockNode) waitRcode(t *testing.T, name string, rcode int, timeout time.Duration) *dns.Msg {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := new(dns.Msg).SetQuestion(name, dns.TypeA)
		m.SetEdns0(1232, false)
		r, err := s.query(t, "udp", m)
		if err == nil && r.Rcode == rcode {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("stock CoreDNS: %s: no %s within %s (last %v, %v)", name, dns.RcodeToString[rcode], timeout, r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSameSOA waits until the stock CoreDNS serves the same rune. SOA as
// runed: the serial is the log seq, so both views then hold the same state.
func (s *stockNode) waitSameSOA(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		want := s.n.ask(t, "udp", "rune.", dns.TypeSOA)
		m := new(dns.Msg).SetQuestion("rune.", dns.TypeSOA)
		got, err := s.query(t, "udp", m)
		if err == nil && want.Rcode == dns.RcodeSuccess && stockDiff(want, got) == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stock CoreDNS never caught up with runed's SOA within %s:\nruned: %v\nstock: %v (%v)", timeout, want, got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stockDiff says how b differs from a in rcode, flags and records (the OPT
// pseudo-record aside), or "" when they match.
func stockDiff(a, b *dns.Msg) string {
	if a.Rcode != b.Rcode {
		return fmt.Sprintf("rcode %s vs %s", dns.RcodeToString[a.Rcode], dns.RcodeToString[b.Rcode])
	}
	if a.Authoritative != b.Authoritative {
		return fmt.Sprintf("AA %v vs %v", a.Authoritative, b.Authoritative)
	}
	for _, sec := range []struct {
		name string
		a, b []dns.RR
	}{{"answer", a.Answer, b.Answer}, {"authority", a.Ns, b.Ns}, {"additional", a.Extra, b.Extra}} {
		if x, y := stockRRs(sec.a), stockRRs(sec.b); !slices.Equal(x, y) {
			return fmt.Sprintf("%s %q vs %q", sec.name, x, y)
		}
	}
	return ""
}

func stockRRs(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype != dns.TypeOPT {
			out = append(out, rr.String())
		}
	}
	return out
}
