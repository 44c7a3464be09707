// Package pebbletest runs Pebble, Let's Encrypt's ACME test server, for
// tests of the edge ingress: on loopback next to an in-process ingress, or
// inside a network namespace next to runed processes. Its validation
// authority resolves names with a DNS server the test runs (ServeDNS), so
// HTTP-01 goes where the test says and nothing leaves the machine.
package pebbletest

import (
	"context"
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

	"github.com/runenet/runenet/internal/testkit"
)

// Tool builds one of the module's `tool` dependencies (go.mod pins their
// versions) and returns its path: `go tool -n` builds it into the build
// cache from the module cache, without installing anything.
func Tool(tb testing.TB, name string) string {
	tb.Helper()
	out, err := exec.Command("go", "tool", "-n", name).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		tb.Fatalf("go tool -n %s: %v\n%s", name, err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// Options say where Pebble runs.
type Options struct {
	// IP is the address Pebble listens on (default 127.0.0.1).
	IP string
	// Validity is that of the certificates it issues.
	Validity time.Duration
	// Command makes the command that runs Pebble, e.g. inside a network
	// namespace (default exec.Command).
	Command func(args ...string) *exec.Cmd
	// Dial is how the test reaches Pebble's listeners (default: directly).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Pebble is one ACME test server. New fixes its directory URL and trust
// root so that ACME clients can be configured first; Start runs it once the
// port its validation authority dials for HTTP-01 is known.
type Pebble struct {
	// DirURL is the ACME directory URL.
	DirURL string
	// RootFile is the PEM of the (self-signed) certificate of Pebble's own
	// HTTPS listener: what an ACME client trusts to reach it.
	RootFile string
	// Issuing is Pebble's issuing root, what clients of an ingress whose
	// certificates Pebble issued trust; set by Start.
	Issuing *x509.CertPool

	opts               Options
	dir, keyFile       string
	acmePort, mgmtPort string
	out                testkit.SyncBuffer
}

// New prepares a Pebble listening on opts.IP.
func New(tb testing.TB, opts Options) *Pebble {
	tb.Helper()
	if opts.IP == "" {
		opts.IP = "127.0.0.1"
	}
	if opts.Command == nil {
		opts.Command = func(args ...string) *exec.Cmd { return exec.Command(args[0], args[1:]...) }
	}
	if opts.Dial == nil {
		opts.Dial = (&net.Dialer{}).DialContext
	}
	p := &Pebble{opts: opts, dir: tb.TempDir(), acmePort: FreePort(tb), mgmtPort: FreePort(tb)}
	p.DirURL = "https://" + net.JoinHostPort(opts.IP, p.acmePort) + "/dir"
	p.RootFile, p.keyFile = testkit.ServerCertFor(tb, opts.IP, "localhost")
	return p
}

// Start runs Pebble: its validation authority resolves names with the DNS
// server at dnsServer (TCP, as Pebble asks) and dials HTTP-01 on httpPort.
// It returns once Pebble serves its directory; Pebble is killed when the
// test ends.
func (p *Pebble) Start(tb testing.TB, httpPort int, dnsServer string) {
	tb.Helper()
	tlsPort, _ := strconv.Atoi(FreePort(tb))
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           net.JoinHostPort(p.opts.IP, p.acmePort),
		"managementListenAddress": net.JoinHostPort(p.opts.IP, p.mgmtPort),
		"certificate":             p.RootFile,
		"privateKey":              p.keyFile,
		"httpPort":                httpPort,
		"tlsPort":                 tlsPort,
		"ocspResponderURL":        "",
		"retryAfter":              map[string]int{"authz": 1, "order": 1},
		"profiles": map[string]any{"default": map[string]any{
			"description": "test", "validityPeriod": int(p.opts.Validity / time.Second),
		}},
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(p.dir, "pebble.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := p.opts.Command(Tool(tb, "pebble"), "-config", cfgFile, "-dnsserver", dnsServer)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Kill() // the Pebble this test started, by its PID
		cmd.Wait()
		if tb.Failed() {
			tb.Logf("pebble output:\n%s", p.out.String())
		}
	})

	root, err := os.ReadFile(p.RootFile)
	if err != nil {
		tb.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(root)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots}, DialContext: p.opts.Dial,
	}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := hc.Get(p.DirURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("pebble does not serve %s within 30s: %v\n%s", p.DirURL, err, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := hc.Get("https://" + net.JoinHostPort(p.opts.IP, p.mgmtPort) + "/roots/0")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	issuing, _ := io.ReadAll(resp.Body)
	p.Issuing = x509.NewCertPool()
	if !p.Issuing.AppendCertsFromPEM(issuing) {
		tb.Fatalf("pebble /roots/0 returned no PEM certificate: %q", issuing)
	}
}

// Orders counts the ACME orders Pebble has created, from its log.
func (p *Pebble) Orders() int { return strings.Count(p.out.String(), "Added order ") }

// FreePort is a TCP port free on loopback now.
func FreePort(tb testing.TB) string {
	tb.Helper()
	_, port, _ := net.SplitHostPort(testkit.FreeAddr(tb))
	return port
}
