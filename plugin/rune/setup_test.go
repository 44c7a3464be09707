package rune

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/miekg/dns"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/corefile"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/node/nodeconfig"
)

func TestParse(t *testing.T) {
	// As in runed, which links the in-process mode in.
	SetLocal(func(nodeconfig.Config) (*cluster.View, func() error, error) {
		return nil, nil, errors.New("not opened by parse tests")
	})
	defer SetLocal(nil)
	// Files named by options must exist (errors carry their line).
	dir := t.TempDir()
	file := dir + "/f"
	if err := os.WriteFile(file, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		input string
		check func(*config) bool
		err   string // substring of the error; "" for success
	}{
		{`rune`, func(c *config) bool {
			return c.ttl == DefaultTTL && c.node.DataDir == corefile.DefaultDataDir && c.node.APIAddr == "" &&
				c.node.ClusterCIDR == corefile.DefaultClusterCIDR && c.node.StaleBudget == corefile.DefaultStaleBudget && !c.node.DevMode
		}, ""},
		{`rune {
			data_dir /tmp/rune
			cluster_cidr 10.200.0.0/16
			api unix:///tmp/rune/api.sock
			token s3cret
			stale_budget 5s
			ttl 30
			dev_mode
			node_name n1
		}`, func(c *config) bool {
			return c.ttl == 30 && c.node.DataDir == "/tmp/rune" && c.node.ClusterCIDR == "10.200.0.0/16" &&
				c.node.APIAddr == "unix:///tmp/rune/api.sock" && c.node.APIToken == "s3cret" &&
				c.node.StaleBudget == 5*time.Second && c.node.DevMode && c.node.NodeName == "n1"
		}, ""},
		{`rune {
			endpoint https://runed.example:7443
			token s3cret
		}`, func(c *config) bool { return c.endpoint == "https://runed.example:7443" && c.node.APIToken == "s3cret" }, ""},
		{"rune example.org", nil, "Testfile:1 - Error during parsing: rune takes no zones"},
		{"rune {\n ttl 5000\n}", nil, "Testfile:2 - Error during parsing: ttl: \"5000\""},
		{"rune {\n ttl\n}", nil, "ttl takes 1 argument(s), got 0"},
		{"rune {\n stale_budget soon\n}", nil, "Testfile:2 - Error during parsing: stale_budget \"soon\""},
		{"rune {\n stale_budget -1s\n}", nil, "want a positive duration"},
		{"rune {\n cluster_cidr 10.96.0.0\n}", nil, "Testfile:2 - Error during parsing: cluster CIDR \"10.96.0.0\": not a CIDR"},
		{"rune {\n cluster_cidr fd00::/64\n}", nil, "only IPv4"},
		{"rune {\n cluster_cidr 8.8.0.0/16\n}", nil, "not private address space"},
		{"rune {\n vip_hold soon\n}", nil, "vip_hold \"soon\": want a positive duration"},
		{"rune {\n api /run/rune.sock\n}", nil, "want unix:///path/to/socket or tcp://host:port"},
		{"rune {\n dev_mode yes\n}", nil, "Testfile:2 - Error during parsing: dev_mode takes 0 argument(s), got 1"},
		{"rune {\n colour blue\n}", nil, "Testfile:2 - Error during parsing: unknown property \"colour\""},
		{"rune {\n endpoint ftp://x\n}", nil, "endpoint: \"ftp://x\""},
		{"rune {\n endpoint unix:///run/rune/api.sock\n data_dir /x\n}", nil, "data_dir configures the local store"},
		{"rune {\n endpoint unix:///run/rune/api.sock\n cluster_addr 10.0.0.1:7946\n}", nil, "cluster_addr configures the local store"},
		{"rune\nrune", nil, "only be used once"},
		// The API's options of the in-process mode, and what the remote
		// mode takes or refuses.
		{"rune {\n api tcp://127.0.0.1:7070\n token_file " + file + "\n read_token_file " + file + "\n tls " + file + " " + file + "\n debug\n}", func(c *config) bool {
			n := c.node
			return n.APITokenFile == file && n.APIReadTokenFile == file && n.APITLSCert == file && n.APITLSKey == file && n.DebugAPI
		}, ""},
		{"rune {\n token_file " + dir + "/missing\n}", nil, "Testfile:2 - Error during parsing: token_file: stat " + dir + "/missing"},
		{"rune {\n tls " + file + "\n}", nil, "tls takes 2 argument(s), got 1"},
		{"rune {\n debug on\n}", nil, "debug takes 0 argument(s)"},
		{"rune {\n endpoint https://10.0.0.5:7070\n token_file " + file + "\n ca " + file + "\n}", func(c *config) bool {
			return c.endpoint == "https://10.0.0.5:7070" && c.node.APITokenFile == file && c.ca == file
		}, ""},
		{"rune {\n endpoint tcp://10.0.0.5:7070\n ca " + dir + "/missing\n}", nil, "ca: stat"},
		{"rune {\n ca " + file + "\n}", nil, "ca is for endpoint (remote mode)"},
		{"rune {\n endpoint tcp://10.0.0.5:7070\n debug\n}", nil, "debug configures the local store or its API and cannot be combined with endpoint"},
		{"rune {\n endpoint tcp://10.0.0.5:7070\n read_token_file " + file + "\n}", nil, "read_token_file configures"},
		{"rune {\n endpoint tcp://10.0.0.5:7070\n token t\n token_file " + file + "\n}", nil, "token and token_file are exclusive"},
	}
	for _, tc := range tests {
		c := caddy.NewTestController("dns", tc.input)
		cfg, err := parse(c)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: unexpected error %v", tc.input, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want it to contain %q", tc.input, err, tc.err)
		case tc.err == "" && !tc.check(cfg):
			t.Errorf("%q: parsed %+v", tc.input, cfg)
		}
	}
}

// In remote mode the plugin answers from a View fed by a runed's watch API,
// as a stock CoreDNS would: over the runed's unix socket, and as the README
// shows it for a runed elsewhere — TCP over TLS, the runed's certificate
// trusted with ca, and runed's read-only token from token_file (enough to
// follow, nothing more).
func TestRemoteMode(t *testing.T) {
	files := t.TempDir()
	tokenFile, readFile := filepath.Join(files, "token"), filepath.Join(files, "read-token")
	for f, tok := range map[string]string{tokenFile: "full", readFile: "read-only"} {
		if err := os.WriteFile(f, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cert, key := testkit.ServerCert(t)
	for _, tc := range []struct {
		name  string
		node  nodeconfig.Config
		block func(api string) string
	}{
		{"unix socket", nodeconfig.Config{}, func(api string) string { return "endpoint " + api }},
		{"tls with the read-only token", nodeconfig.Config{APIAddr: "tcp://127.0.0.1:0", APITokenFile: tokenFile, APIReadTokenFile: readFile, APITLSCert: cert, APITLSKey: key},
			func(api string) string { return "endpoint " + api + "\n token_file " + readFile + "\n ca " + cert }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.node.DataDir, tc.node.NodeName = t.TempDir(), "n1"
			rt, err := node.Acquire(tc.node)
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Release()
			_, seq, err := rt.Controller().Cast(context.Background(), []cluster.SourceFile{{Name: "api.yaml", Data: []byte(service("default", "api"))}})
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := parse(caddy.NewTestController("dns", "rune {\n "+tc.block(rt.APIAddr())+"\n}"))
			if err != nil {
				t.Fatal(err)
			}
			v, release, err := cfg.open()
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := v.WaitFor(ctx, seq); err != nil {
				t.Fatalf("the remote view did not follow runed: %v", err)
			}
			r := &Rune{TTL: DefaultTTL}
			r.SetView(v)
			want, _ := rt.View().Snapshot().Service(cluster.NamespacedName{Namespace: "default", Name: "api"})
			m := serve(r, query("api.default.rune.", dns.TypeA, false))
			if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != want.Value.VIP.String() {
				t.Errorf("remote answer %v, want %s", m, want.Value.VIP)
			}
		})
	}
}

// In a stock CoreDNS (no in-process mode linked in) a block needs endpoint.
func TestStockNeedsEndpoint(t *testing.T) {
	_, err := parse(caddy.NewTestController("dns", "rune {\n data_dir /var/lib/rune\n}"))
	if err == nil || !strings.Contains(err.Error(), "endpoint is required: this CoreDNS cannot open a runed store in-process") {
		t.Fatalf("a block without endpoint in a stock CoreDNS: %v", err)
	}
	if _, err := parse(caddy.NewTestController("dns", "rune {\n endpoint unix:///run/runed.sock\n}")); err != nil {
		t.Fatalf("remote mode: %v", err)
	}
}
