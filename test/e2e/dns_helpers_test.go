package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/runenet/runenet/proxy/netnstest"

	"github.com/runenet/runenet/internal/testkit"
)

// dnsNode is a runed running inside its own network namespace.
type dnsNode struct {
	ns       *netnstest.NS
	runed    string // binary
	rune     string // CLI binary
	dataDir  string
	api      []string // the rune CLI's flags to reach runed's API
	corefile string
	// flags, when set, start runed from these flags instead of -conf corefile.
	flags []string
	cmd   *exec.Cmd
	log   *testkit.SyncBuffer
}

const dnsAddr = "127.0.0.123:53"

// newDNSNode creates a namespace with an upstream DNS server the namespace's
// /etc/resolv.conf points at (ip netns exec bind-mounts /etc/netns/NAME/),
// and writes runed's own default Corefile (--print-corefile, with flags) for it.
func newDNSNode(t *testing.T, flags ...string) *dnsNode {
	t.Helper()
	n := newNode(t, "rune-e2e-dns")
	n.corefile = filepath.Join(filepath.Dir(n.dataDir), "Corefile")
	n.ns.ResolvConf(t, "127.0.0.1")
	startUpstream(t, n.ns, "127.0.0.1:53")

	// --debug-api: the tests inject faults (rune debug pause-watch).
	out, err := exec.Command(n.runed, append([]string{"--print-corefile", "--data-dir", n.dataDir, "--stale-budget", "2s", "--debug-api"}, flags...)...).Output()
	if err != nil {
		t.Fatalf("runed --print-corefile: %v", err)
	}
	// Reload as often as the reload plugin allows, so the test need not wait.
	n.writeCorefile(t, strings.Replace(string(out), "\treload\n", "\treload 2s 1s\n", 1))
	return n
}

// newNode is a namespace for a runed, with the binaries built and a data
// directory whose API socket the CLI is pointed at.
func newNode(t *testing.T, prefix string) *dnsNode {
	t.Helper()
	netnstest.RequireRoot(t)
	n := &dnsNode{
		runed:   testkit.Binary(t, "./cmd/runed"),
		rune:    testkit.Binary(t, "./cmd/rune"),
		ns:      netnstest.New(t, prefix),
		dataDir: filepath.Join(t.TempDir(), "data"),
	}
	n.api = []string{"--api", "unix://" + filepath.Join(n.dataDir, "runed.sock")}
	return n
}

func (n *dnsNode) writeCorefile(t *testing.T, s string) {
	t.Helper()
	if err := os.WriteFile(n.corefile, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (n *dnsNode) editCorefile(t *testing.T, old, new string) {
	t.Helper()
	b, err := os.ReadFile(n.corefile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("Corefile has no %q:\n%s", old, b)
	}
	n.writeCorefile(t, strings.Replace(string(b), old, new, 1))
}

// start runs runed -conf (or from n.flags) inside the namespace; it is
// stopped when the test ends.
func (n *dnsNode) start(t *testing.T) {
	t.Helper()
	n.log = &testkit.SyncBuffer{}
	args := n.flags
	if args == nil {
		args = []string{"-conf", n.corefile}
	}
	n.cmd = n.ns.Command(append([]string{n.runed}, args...)...)
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := n.cmd
	t.Cleanup(func() {
		n.stopCmd(cmd)
		if t.Failed() {
			t.Logf("runed output:\n%s", n.log.String())
		}
	})
}

// stop ends runed gracefully (SIGTERM) and waits for it.
func (n *dnsNode) stop(t *testing.T) {
	t.Helper()
	n.stopCmd(n.cmd)
}

func (n *dnsNode) stopCmd(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// exitOutput runs a runed that must refuse to start and returns its output
// and exit error; the test fails if it is still running after 30s.
func exitOutput(t *testing.T, cmd *exec.Cmd) ([]byte, error) {
	t.Helper()
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s kept running, want it to refuse to start:\n%s", strings.Join(cmd.Args, " "), out)
	}
	return out, err
}

// cli runs the rune CLI against this node's API socket.
func (n *dnsNode) cli(t *testing.T, args ...string) string {
	t.Helper()
	out, err := n.tryCLI(args...)
	if err != nil {
		t.Fatalf("rune %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// tryCLI is cli for a command that may fail: its output and error.
func (n *dnsNode) tryCLI(args ...string) (string, error) {
	// Inside the namespace: a TCP API listens on the namespace's loopback.
	cmd := n.ns.Command(append(append([]string{n.rune}, n.api...), args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// cast casts YAML through the CLI and returns each service's VIP by "ns/name".
func (n *dnsNode) cast(t *testing.T, yaml string) map[string]string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "svc.yaml")
	if err := os.WriteFile(f, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var res struct {
		Results []struct{ Namespace, Name, VIP string }
	}
	out := n.cli(t, "cast", "-o", "json", f)
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("cast output %q: %v", out, err)
	}
	vips := map[string]string{}
	for _, r := range res.Results {
		vips[r.Namespace+"/"+r.Name] = r.VIP
	}
	return vips
}

// query asks runed from inside the namespace over proto ("udp" or "tcp").
func (n *dnsNode) query(t testing.TB, proto string, m *dns.Msg) (*dns.Msg, error) {
	t.Helper()
	return queryIn(t, n.ns, dnsAddr, proto, m)
}

// ask is query for name/qtype with EDNS0 (as dig sends it), failing the test on error.
func (n *dnsNode) ask(t testing.TB, proto, name string, qtype uint16) *dns.Msg {
	t.Helper()
	return askIn(t, n.ns, dnsAddr, proto, name, qtype)
}

// queryIn sends m to the DNS server at addr from inside ns over proto.
func queryIn(t testing.TB, ns *netnstest.NS, addr, proto string, m *dns.Msg) (r *dns.Msg, err error) {
	t.Helper()
	return queryFrom(t, ns, netip.Addr{}, addr, proto, m)
}

// queryFrom is queryIn from the source address src (the kernel's choice
// when src is the zero Addr).
func queryFrom(t testing.TB, ns *netnstest.NS, src netip.Addr, addr, proto string, m *dns.Msg) (r *dns.Msg, err error) {
	t.Helper()
	c := &dns.Client{Net: proto, Timeout: 2 * time.Second}
	if src.IsValid() {
		local := net.Addr(net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
		if proto == "tcp" {
			local = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		}
		c.Dialer = &net.Dialer{Timeout: c.Timeout, LocalAddr: local}
	}
	ns.Do(t, func() { r, _, err = c.Exchange(m, addr) })
	return r, err
}

// askIn is queryIn for name/qtype with EDNS0 (as dig sends it), failing the test on error.
func askIn(t testing.TB, ns *netnstest.NS, addr, proto, name string, qtype uint16) *dns.Msg {
	t.Helper()
	return askFrom(t, ns, netip.Addr{}, addr, proto, name, qtype)
}

// askFrom is askIn from the source address src (see queryFrom).
func askFrom(t testing.TB, ns *netnstest.NS, src netip.Addr, addr, proto, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg).SetQuestion(name, qtype)
	m.SetEdns0(1232, false)
	r, err := queryFrom(t, ns, src, addr, proto, m)
	if err != nil {
		t.Fatalf("%s from %v: %s %s over %s: %v", addr, src, dns.TypeToString[qtype], name, proto, err)
	}
	return r
}

// waitAnswer polls until name has an A record (runed up and ready).
func (n *dnsNode) waitAnswer(t *testing.T, name string, timeout time.Duration) *dns.Msg {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := new(dns.Msg).SetQuestion(name, dns.TypeA)
		r, err := n.query(t, "udp", m)
		if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer for %s within %s: %v %v", name, timeout, r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpGet fetches a URL from inside the namespace.
func (n *dnsNode) httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	code, body, err := n.tryGet(t, url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return code, body
}

// tryGet is httpGet that returns the error.
func (n *dnsNode) tryGet(t *testing.T, url string) (int, string, error) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
			n.ns.Do(t, func() { conn, err = (&net.Dialer{}).DialContext(ctx, network, addr) })
			return conn, err
		},
	}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// Upstream answers (for forwarding through /etc/resolv.conf).
const (
	upstreamA = "192.0.2.10"
	bigTXTs   = 40 // big.example.org. TXT: too large for 512 bytes over UDP
)

// startUpstream serves example.org. on addr (UDP and TCP) inside ns: A for
// any name below it, many TXT records at big.example.org., NXDOMAIN
// otherwise.
func startUpstream(t *testing.T, ns *netnstest.NS, addr string) {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		q := r.Question[0]
		switch {
		case q.Qtype == dns.TypeTXT && strings.EqualFold(q.Name, "big.example.org."):
			for i := range bigTXTs {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
					Txt: []string{fmt.Sprintf("record %02d %s", i, strings.Repeat("x", 60))}})
			}
		case q.Qtype == dns.TypeA && dns.IsSubDomain("example.org.", strings.ToLower(q.Name)):
			rr, _ := dns.NewRR(q.Name + " 60 IN A " + upstreamA)
			m.Answer = append(m.Answer, rr)
		default:
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	var servers []*dns.Server
	ns.Do(t, func() {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, &dns.Server{PacketConn: pc, Handler: h}, &dns.Server{Listener: ln, Handler: h})
	})
	for _, s := range servers {
		go s.ActivateAndServe()
		t.Cleanup(func() { s.Shutdown() })
	}
}

// ede returns m's Extended DNS Error, if any.
func ede(m *dns.Msg) *dns.EDNS0_EDE {
	if o := m.IsEdns0(); o != nil {
		for _, opt := range o.Option {
			if e, ok := opt.(*dns.EDNS0_EDE); ok {
				return e
			}
		}
	}
	return nil
}

// fastAnswered is rune_dns_fastpath_packets_total{path="answered"} on runed's /metrics.
func (n *dnsNode) fastAnswered(t *testing.T) float64 {
	t.Helper()
	code, body := n.httpGet(t, "http://127.0.0.1:9100/metrics")
	m := regexp.MustCompile(`(?m)^rune_dns_fastpath_packets_total\{path="answered"\} (\S+)$`).FindStringSubmatch(body)
	if code != 200 || m == nil {
		t.Fatalf("/metrics (%d) lacks rune_dns_fastpath_packets_total", code)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
