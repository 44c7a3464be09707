package node

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/node/nodeconfig"
)

func TestAcquireShareAttachRelease(t *testing.T) {
	dir := t.TempDir()
	if _, err := Attach(""); err == nil || !strings.Contains(err.Error(), "`rune` block") {
		t.Fatalf("attach with nothing open: %v", err)
	}
	cfg := nodeconfig.Config{DataDir: dir, NodeName: "n1"}
	a, err := Acquire(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A reload acquires again before releasing: same runtime, not a second store.
	b, err := Acquire(cfg)
	if err != nil || b != a {
		t.Fatalf("second acquire: %v (same runtime: %v)", err, b == a)
	}
	if _, err := Acquire(nodeconfig.Config{DataDir: dir, NodeName: "n1", ClusterCIDR: "10.200.0.0/16"}); err == nil || !strings.Contains(err.Error(), "different settings") {
		t.Fatalf("acquire with other settings: %v", err)
	}
	c, err := Attach(dir)
	if err != nil || c != a {
		t.Fatalf("attach: %v", err)
	}
	for _, r := range []*Runtime{a, b, c} {
		if err := r.Release(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Attach(""); err == nil {
		t.Fatal("runtime still open after the last release")
	}
	// Closed for real: the store can be opened again.
	d, err := Acquire(cfg)
	if err != nil {
		t.Fatalf("reopen after close: %v", err)
	}
	d.Release()
}

func TestBadConfigIsRefused(t *testing.T) {
	if _, err := Acquire(nodeconfig.Config{DataDir: t.TempDir(), ClusterCIDR: "8.8.8.0/24"}); err == nil || !strings.Contains(err.Error(), "not private") {
		t.Fatalf("public CIDR: %v", err)
	}
	if _, err := Acquire(nodeconfig.Config{}); err == nil {
		t.Fatal("no data dir accepted")
	}
}

func TestNodeNameFromHostName(t *testing.T) {
	for host, want := range map[string]string{
		"web-01":                    "web-01",
		"Web-01.Example.COM":        "web-01",
		"node1.cluster.internal":    "node1",
		"UPPER":                     "upper",
		"trailing-dot.example.org.": "trailing-dot",
	} {
		if got := nodeNameFromHost(host); got != want {
			t.Errorf("host %q: node name %q, want %q", host, got, want)
		}
	}
}

// A node name that instances could not name (explicit, or a host name that
// does not normalize into a DNS label) stops the node before anything opens.
func TestBadNodeNameIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for _, name := range []string{"Node_1", "web.example.com", "-x"} {
		_, err := Acquire(nodeconfig.Config{DataDir: dir, NodeName: name})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("node name %q", name)) || !strings.Contains(err.Error(), "--node-name") {
			t.Errorf("node name %q: %v, want a refusal naming it and --node-name", name, err)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a refused node created its data directory (%v)", err)
	}
	c := nodeconfig.Config{DataDir: dir}
	if err := setDefaults(&c); err != nil {
		t.Fatalf("default node name from this host: %v", err)
	}
	if p := cluster.NodeNameProblem(c.NodeName); p != "" {
		t.Fatalf("the default node name %q %s", c.NodeName, p)
	}
}

// The runtime's settings appear in the error a mismatched Acquire returns:
// its token must not.
func TestSettingsErrorHidesTheToken(t *testing.T) {
	dir := t.TempDir()
	const token = "s3cret-api-token"
	rt, err := Acquire(nodeconfig.Config{DataDir: dir, NodeName: "n1", APIToken: token})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Release()
	_, err = Acquire(nodeconfig.Config{DataDir: dir, NodeName: "n2", APIToken: token})
	if err == nil || !strings.Contains(err.Error(), "different settings") || strings.Contains(err.Error(), token) {
		t.Fatalf("mismatched acquire: %v; want a refusal without the token", err)
	}
}

// Bad API settings are refused with the option to fix, before the store is
// opened (nothing is left behind).
func TestAPISettingsAreChecked(t *testing.T) {
	files := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	token, empty := write("token", "full\n"), write("empty", "\n")
	for _, tc := range []struct {
		cfg nodeconfig.Config
		err string
	}{
		{nodeconfig.Config{APIAddr: "tcp://127.0.0.1:0"}, "needs a bearer token: start runed with --api-token-file FILE (Corefile: token_file FILE in the rune block)"},
		{nodeconfig.Config{APIAddr: "tcp://127.0.0.1:0", APITokenFile: filepath.Join(files, "missing")}, "api token_file (--api-token-file): open " + files + "/missing: no such file"},
		{nodeconfig.Config{APIAddr: "tcp://127.0.0.1:0", APITokenFile: empty}, "the file is empty"},
		{nodeconfig.Config{APITokenFile: token, APIToken: "x"}, "token and token_file (--api-token-file) are exclusive"},
		{nodeconfig.Config{APIReadTokenFile: token}, "read_token_file (--api-read-token-file) needs token_file"},
		{nodeconfig.Config{APITokenFile: token, APIReadTokenFile: token}, "is the full token"},
		{nodeconfig.Config{APITokenFile: token, APITLSCert: token}, "tls needs both a certificate and a key"},
		{nodeconfig.Config{APITokenFile: token, APITLSCert: token, APITLSKey: token}, "tls (--api-tls-cert) serves a tcp:// API"},
		{nodeconfig.Config{APIAddr: "tcp://127.0.0.1:0", APITokenFile: token, APITLSCert: token, APITLSKey: token}, "api tls " + token},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		tc.cfg.DataDir, tc.cfg.NodeName = dir, "n1"
		rt, err := Acquire(tc.cfg)
		if err == nil {
			rt.Release()
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%v: %v, want %q", tc.cfg, err, tc.err)
		}
		if _, serr := os.Stat(dir); serr == nil {
			t.Errorf("%v: the data directory was created before the refusal", tc.cfg)
		}
	}
}

// The log says when the View goes stale and when it recovers, once each.
func TestLogsStaleness(t *testing.T) {
	rt, err := Acquire(nodeconfig.Config{DataDir: t.TempDir(), NodeName: "n1", StaleBudget: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Release()
	var mu sync.Mutex
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go logStaleness(ctx, rt.View(), logger, 10*time.Millisecond)
	logged := func(want string) bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Count(buf.String(), want) == 1
	}
	rt.View().PauseFor(400 * time.Millisecond)
	for deadline := time.Now().Add(10 * time.Second); !logged("view has caught up"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("log:\n%s", buf.String())
		}
	}
	if !logged("level=WARN msg=\"view is stale: ") || !logged("behind the log (budget 0.1 s)") {
		t.Fatalf("log:\n%s", buf.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
