package ingress

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/runenet/runenet/internal/testkit"
)

// toolBinary builds one of the module's `tool` dependencies (go.mod pins
// their versions) and returns its path: `go tool -n` builds it into the build
// cache from the module cache, without installing anything.
func toolBinary(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "tool", "-n", name).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go tool -n %s: %v\n%s", name, err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// pebble is an ACME test server on loopback whose validation authority
// resolves every name to 127.0.0.1 and connects to our ingress's HTTP port.
// newPebble fixes its URL and trust root so the ingress can be configured
// first; start runs it once the ingress's HTTP port is known.
type pebble struct {
	dir                string
	dirURL             string
	rootFile           string // PEM of the CA that signed Pebble's own HTTPS certificate
	ca                 *testCA
	acmePort, mgmtPort string
	validity           time.Duration
	issuing            *x509.CertPool // Pebble's issuing root: what clients of the ingress trust
	out                *testkit.SyncBuffer
}

func newPebble(t *testing.T, validity time.Duration) *pebble {
	t.Helper()
	p := &pebble{dir: t.TempDir(), ca: newTestCA(t), acmePort: freePort(t), mgmtPort: freePort(t), validity: validity}
	p.dirURL = "https://127.0.0.1:" + p.acmePort + "/dir"
	p.rootFile = filepath.Join(p.dir, "ca.pem")
	certPEM, keyPEM := p.ca.issue(t, time.Now().Add(24*time.Hour), "localhost", "127.0.0.1")
	for name, data := range map[string][]byte{"ca.pem": p.ca.PEM, "cert.pem": certPEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(p.dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func (p *pebble) start(t *testing.T, httpPort int) {
	t.Helper()
	bin := toolBinary(t, "pebble")
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           "127.0.0.1:" + p.acmePort,
		"managementListenAddress": "127.0.0.1:" + p.mgmtPort,
		"certificate":             filepath.Join(p.dir, "cert.pem"),
		"privateKey":              filepath.Join(p.dir, "key.pem"),
		"httpPort":                httpPort,
		"tlsPort":                 mustAtoi(freePort(t)),
		"ocspResponderURL":        "",
		"retryAfter":              map[string]int{"authz": 1, "order": 1},
		"profiles": map[string]any{"default": map[string]any{
			"description": "test", "validityPeriod": int(p.validity / time.Second),
		}},
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(p.dir, "pebble.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cfgFile, "-dnsserver", startLoopbackDNS(t))
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	out := &testkit.SyncBuffer{}
	p.out = out
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill() // the pebble this test started, by its PID
		cmd.Wait()
		if t.Failed() {
			t.Logf("pebble output:\n%s", out.String())
		}
	})

	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.ca.pool()}}}
	waitFor(t, 20*time.Second, "pebble to listen", func() bool {
		resp, err := hc.Get(p.dirURL)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	resp, err := hc.Get("https://127.0.0.1:" + p.mgmtPort + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	root, _ := io.ReadAll(resp.Body)
	p.issuing = x509.NewCertPool()
	if !p.issuing.AppendCertsFromPEM(root) {
		t.Fatalf("pebble /roots/0 returned no PEM certificate: %q", root)
	}
}

// orders counts the ACME orders Pebble has created, from its log.
func (p *pebble) orders() int { return strings.Count(p.out.String(), "Added order ") }

// acme is ACMEOptions for this Pebble, with lease as the lock lease.
func (p *pebble) acme(lease time.Duration) ACMEOptions {
	return ACMEOptions{CA: p.dirURL, CARootsFile: p.rootFile, Email: "ops@example.test", LockLease: lease}
}

// startLoopbackDNS answers A 127.0.0.1 for every name, so Pebble validates
// against our ingress and nothing leaves the machine. Pebble's custom
// resolver speaks DNS over TCP.
func startLoopbackDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, qq := range q.Question {
			if qq.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// startACMEIngress starts an ingress whose ACME CA is a fresh Pebble issuing
// certificates valid for validity.
func startACMEIngress(t *testing.T, n *node, validity time.Duration, acme ACMEOptions) (*Ingress, *pebble) {
	t.Helper()
	p := newPebble(t, validity)
	own := p.acme(acme.LockLease)
	acme.CA, acme.CARootsFile, acme.Email = own.CA, own.CARootsFile, own.Email
	ing := startIngress(t, n, acme)
	p.start(t, ing.HTTPAddr().(*net.TCPAddr).Port)
	return ing, p
}
