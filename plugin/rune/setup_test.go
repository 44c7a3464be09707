package rune

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/miekg/dns"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/corefile"
	"github.com/runenet/runenet/node"
)

func TestParse(t *testing.T) {
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
		{"rune\nrune", nil, "only be used once"},
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
// as a stock CoreDNS would.
func TestRemoteMode(t *testing.T) {
	dir := t.TempDir()
	rt, err := node.Acquire(node.Config{DataDir: dir, NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Release()
	_, seq, err := rt.Controller().Cast(context.Background(), []cluster.SourceFile{{Name: "api.yaml", Data: []byte(service("default", "api"))}})
	if err != nil {
		t.Fatal(err)
	}

	cfg, err := parse(caddy.NewTestController("dns", "rune {\n endpoint unix://"+dir+"/runed.sock\n}"))
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
		t.Fatal(err)
	}
	r := &Rune{TTL: DefaultTTL}
	r.SetView(v)
	want, _ := rt.View().Snapshot().Service(cluster.NamespacedName{Namespace: "default", Name: "api"})
	m := serve(r, query("api.default.rune.", dns.TypeA, false))
	if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != want.Value.VIP.String() {
		t.Errorf("remote answer %v, want %s", m, want.Value.VIP)
	}
}
