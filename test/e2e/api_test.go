package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/internal/testkit"
)

const (
	flagsAPIAddr   = "127.0.0.1:7443"
	flagsToken     = "e2e-full-token"
	flagsReadToken = "e2e-read-token"
)

func writeToken(t *testing.T, dir, name, token string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTCPAPIFromFlags starts runed from its flags alone (no -conf) with its
// API on TCP over TLS, a token file and a read-only token file, and drives
// it with the CLI as an operator elsewhere would: tcp:// with --ca, and
// https://. The read-only token lists but cannot cast; fault injection is
// off without --debug-api.
func TestTCPAPIFromFlags(t *testing.T) {
	n := newDNSNode(t)
	dir := t.TempDir()
	token, readToken := writeToken(t, dir, "token", flagsToken), writeToken(t, dir, "read-token", flagsReadToken)
	cert, key := testkit.ServerCert(t)
	n.flags = []string{"--data-dir", n.dataDir, "--stale-budget", "2s", "--api-addr", "tcp://" + flagsAPIAddr,
		"--api-token-file", token, "--api-read-token-file", readToken, "--api-tls-cert", cert, "--api-tls-key", key}
	n.start(t)
	n.waitSOA(t, 20*time.Second)

	n.api = []string{"--api", "tcp://" + flagsAPIAddr, "--token", flagsToken, "--ca", cert}
	if vips := n.cast(t, dnsServices); vips["default/api"] == "" {
		t.Fatalf("cast over the TLS API gave %v", vips)
	}
	n.waitAnswer(t, "api.default.rune.", 5*time.Second)
	n.api = []string{"--api", "https://" + flagsAPIAddr, "--token", flagsToken, "--ca", cert}
	if out := n.cli(t, "get", "services"); !strings.Contains(out, "api") {
		t.Errorf("get services over https://:\n%s", out)
	}

	svc := filepath.Join(t.TempDir(), "svc.yaml")
	if err := os.WriteFile(svc, []byte("service:\n  name: other\n  ports: [{port: 80}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		api  []string
		args []string
		want string
	}{
		{[]string{"--token", flagsReadToken, "--ca", cert}, []string{"cast", svc}, "this token is read-only"},
		{[]string{"--token", flagsToken, "--ca", cert}, []string{"debug", "pause-watch", "1s"}, "fault injection is disabled on this node: start runed with --debug-api"},
		{[]string{"--token", "wrong", "--ca", cert}, []string{"get", "services"}, "missing or wrong bearer token"},
		{[]string{"--token", flagsToken}, []string{"get", "services"}, "serves TLS: address it as https://HOST:PORT, or pass its certificate (or CA) with --ca"},
	} {
		n.api = append([]string{"--api", "tcp://" + flagsAPIAddr}, tc.api...)
		if out, err := n.tryCLI(tc.args...); err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("rune %v %v: %v\n%s\nwant a failure saying %q", tc.api, tc.args, err, out, tc.want)
		}
	}
}

// A TCP API without a token cannot start, from flags or from a Corefile,
// and the error names the option that fixes it.
func TestTCPAPIWithoutTokenFile(t *testing.T) {
	n := newDNSNode(t)
	cmd := n.ns.Command(n.runed, "--data-dir", n.dataDir, "--api-addr", "tcp://"+flagsAPIAddr)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--api-addr tcp://"+flagsAPIAddr+": a TCP API needs a bearer token: add --api-token-file FILE") {
		t.Errorf("runed --api-addr tcp:// without a token file: %v\n%s", err, out)
	}

	n.editCorefile(t, "\t\tstale_budget 2s\n", "\t\tapi tcp://"+flagsAPIAddr+"\n\t\tstale_budget 2s\n")
	conf, err := exitOutput(t, n.ns.Command(n.runed, "-conf", n.corefile))
	if err == nil || !strings.Contains(string(conf), "needs a bearer token: start runed with --api-token-file FILE (Corefile: token_file FILE in the rune block)") {
		t.Errorf("runed -conf with a TCP API and no token: %v\n%s", err, conf)
	}
}

// A reload that changes the node's settings is refused with the settings in
// runed's log: the API token among them must not be.
func TestTokenNeverLogged(t *testing.T) {
	n := newDNSNode(t)
	const token = "e2e-inline-token-never-logged"
	n.editCorefile(t, "\t\tstale_budget 2s\n", "\t\tstale_budget 2s\n\t\ttoken "+token+"\n")
	n.start(t)
	n.waitSOA(t, 20*time.Second)
	n.editCorefile(t, "\t\tstale_budget 2s\n", "\t\tstale_budget 2s\n\t\tnode_name renamed\n")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(n.log.String(), "different settings") {
		if time.Now().After(deadline) {
			t.Fatalf("the reload with other node settings was not refused in the log:\n%s", n.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if l := n.log.String(); strings.Contains(l, token) || !strings.Contains(l, "REDACTED") {
		t.Fatalf("runed's log shows the token (or not the redacted settings):\n%s", l)
	}
}
