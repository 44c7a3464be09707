package main

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/coredns/caddy"

	"github.com/runenet/runenet/corefile"
)

// Every directive runed orders is compiled in, and every plugin compiled in
// (some arrive as dependencies of others) has a place in the order.
func TestDirectivesMatchPlugins(t *testing.T) {
	var registered []string
	for _, p := range caddy.ListPlugins()["others"] {
		if name, ok := strings.CutPrefix(p, "dns."); ok {
			registered = append(registered, name)
		}
	}
	for _, d := range corefile.Directives {
		if !slices.Contains(registered, d) {
			t.Errorf("directive %q is in corefile.Directives but no plugin registers it", d)
		}
	}
	for _, p := range registered {
		if !slices.Contains(corefile.Directives, p) {
			t.Errorf("plugin %q is compiled in but missing from corefile.Directives", p)
		}
	}
}

func parseFlags(args ...string) (*runedFlags, error) {
	fs := flag.NewFlagSet("runed", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("conf", "", "CoreDNS's -conf")
	f := register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return f, f.finish(fs)
}

func TestFlags(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/xdg")
	tests := []struct {
		args  []string
		check func(corefile.Options) bool
		err   string
	}{
		{nil, func(o corefile.Options) bool {
			return !o.DevMode && o.NodeRole == "" && o.DataDir == corefile.DefaultDataDir && o.DNSAddr == corefile.DefaultDNSAddr
		}, ""},
		{[]string{"--dev-mode"}, func(o corefile.Options) bool {
			return o.DevMode && o.NodeRole == corefile.RoleEdge && o.DataDir == "/xdg/rune"
		}, ""},
		{[]string{"--dev-mode", "--node-role="}, func(o corefile.Options) bool { return o.DevMode && o.NodeRole == "" }, ""},
		{[]string{"--dev-mode", "--data-dir", "/d"}, func(o corefile.Options) bool { return o.DataDir == "/d" }, ""},
		{[]string{"--node-role", "edge", "--stale-budget", "5s"}, func(o corefile.Options) bool { return o.NodeRole == "edge" && o.StaleBudget.Seconds() == 5 }, ""},
		{[]string{"-conf", "Corefile"}, func(corefile.Options) bool { return true }, ""},
		{[]string{"-conf", "Corefile", "--dev-mode"}, nil, "--dev-mode renders the Corefile and cannot be combined with -conf"},
		{[]string{"-conf", "Corefile", "--print-corefile"}, nil, "--print-corefile renders the Corefile"},
		{[]string{"--node-role", "core"}, nil, `--node-role "core"`},
		{[]string{"--stale-budget", "soon"}, nil, `invalid value "soon" for flag -stale-budget`},
		{[]string{"--dns-addr", "127.0.0.123"}, nil, `--dns-addr "127.0.0.123": want host:port`},
	}
	for _, tc := range tests {
		f, err := parseFlags(tc.args...)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.err == "" && !tc.check(f.opts):
			t.Errorf("%q: options %+v", tc.args, f.opts)
		}
	}
}
