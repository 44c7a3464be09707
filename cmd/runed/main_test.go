package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/coremain"

	"github.com/runenet/runenet/corefile"
	"github.com/runenet/runenet/internal/version"
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

// coreFlags is a flag set holding flags as coremain registers them.
func coreFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("runed", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("conf", "", "CoreDNS's -conf")
	fs.String("pidfile", "", "CoreDNS's -pidfile")
	fs.Bool("quiet", false, "CoreDNS's -quiet")
	return fs
}

func parseFlags(args ...string) (*runedFlags, error) {
	f, _, err := parse(coreFlags(), args)
	return f, err
}

// coremain.Run parses the command line again: it must get CoreDNS's flags
// only, so runed's are parsed once and a repeatable one keeps each value once.
func TestCoreDNSGetsOnlyItsFlags(t *testing.T) {
	fs := coreFlags()
	f, coreArgs, err := parse(fs, []string{"--dns-bind", "172.17.0.1", "-pidfile", "/run/runed.pid", "--dns-allow", "192.0.2.0/24", "--dns-bind=172.18.0.1", "-quiet", "--data-dir", "/d"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"-pidfile=/run/runed.pid", "-quiet=true"}; !slices.Equal(coreArgs, want) {
		t.Errorf("arguments left to coremain %q, want %q", coreArgs, want)
	}
	if err := fs.Parse(coreArgs); err != nil { // as coremain.Run does
		t.Fatal(err)
	}
	if want := []string{"172.17.0.1", "172.18.0.1"}; !slices.Equal(f.opts.DNSBind, want) {
		t.Errorf("--dns-bind after coremain's parse: %q, want %q", f.opts.DNSBind, want)
	}
	if want := []string{"192.0.2.0/24"}; !slices.Equal(f.opts.DNSAllow, want) {
		t.Errorf("--dns-allow after coremain's parse: %q, want %q", f.opts.DNSAllow, want)
	}
	if fs.Lookup("pidfile").Value.String() != "/run/runed.pid" || f.opts.DataDir != "/d" {
		t.Errorf("-pidfile %s, --data-dir %s after coremain's parse", fs.Lookup("pidfile").Value, f.opts.DataDir)
	}
}

func TestFlags(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/xdg")
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
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
		{[]string{"--dns-allow", "198.51.100.0/24", "--dns-allow", "2001:db8::/32"}, func(o corefile.Options) bool {
			return slices.Equal(o.DNSAllow, []string{"198.51.100.0/24", "2001:db8::/32"})
		}, ""},
		{[]string{"--dns-allow", "everyone"}, nil, `--dns-allow "everyone": want a CIDR`},
		{[]string{"-conf", "Corefile", "--dns-allow", "198.51.100.0/24"}, nil, "--dns-allow renders the Corefile"},
		{[]string{"--cluster-addr", "10.0.0.1:7946", "--bootstrap"}, func(o corefile.Options) bool { return o.ClusterAddr == "10.0.0.1:7946" && o.Bootstrap }, ""},
		{[]string{"-conf", "Corefile", "--cluster-addr", "10.0.0.1:7946"}, nil, "--cluster-addr renders the Corefile"},
		{[]string{"--dev-mode", "--ingress-http", ":8080", "--ingress-https", ":8443"}, func(o corefile.Options) bool {
			return o.IngressHTTP == ":8080" && o.IngressHTTPS == ":8443"
		}, ""},
		{[]string{"-conf", "Corefile", "--ingress-http", ":8080"}, nil, "--ingress-http renders the Corefile"},
		{[]string{"--api-addr", "tcp://127.0.0.1:7070"}, nil, "a TCP API needs a bearer token: add --api-token-file FILE"},
		{[]string{"--api-addr", "tcp://127.0.0.1:7070", "--api-token-file", token, "--debug-api"}, func(o corefile.Options) bool {
			return o.APITokenFile == token && o.DebugAPI
		}, ""},
		{[]string{"-conf", "Corefile", "--api-token-file", token}, nil, "--api-token-file renders the Corefile"},
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

// rune prints the CoreDNS release without linking CoreDNS, from a constant
// that must follow go.mod.
func TestVersionNamesTheLinkedCoreDNS(t *testing.T) {
	if version.CoreDNS != coremain.CoreVersion {
		t.Errorf("internal/version.CoreDNS is %q, but runed links CoreDNS %q: update it", version.CoreDNS, coremain.CoreVersion)
	}
}

// A data-path directive without netpolicy is refused when the Corefile is
// set up, before anything starts, naming the directive, the place and the
// fix; the Corefile may list the directives in any order.
func TestDataPathNeedsNetPolicy(t *testing.T) {
	const node = "rune {\n\t\tdata_dir /nonexistent/rune\n\t}\n"
	for _, tc := range []struct {
		name, body, err string
	}{
		{"DataplaneAlone", node + "\tdataplane\n", "Corefile:5 - Error during parsing: dataplane needs the netpolicy directive"},
		{"IngressAlone", node + "\tingress\n", "Corefile:5 - Error during parsing: ingress needs the netpolicy directive"},
		{"NetPolicyListedLast", node + "\tingress\n\tdataplane\n\tnetpolicy\n", ""},
		{"NetPolicyInAnotherBlock", node + "\tdataplane\n}\nother.:53 {\n\tnetpolicy\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := caddy.CaddyfileInput{Filepath: "Corefile", ServerTypeName: "dns", Contents: []byte("rune.:53 {\n\t" + tc.body + "}\n")}
			err := caddy.ValidateAndExecuteDirectives(in, nil, true)
			switch {
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "add a line `netpolicy`")):
				t.Fatalf("error %v, want %q and the fix", err, tc.err)
			}
		})
	}
	t.Run("RenderedCorefiles", func(t *testing.T) {
		for _, role := range []string{"", corefile.RoleEdge} {
			f, err := parseFlags("--node-role", role, "--data-dir", "/nonexistent/rune")
			if err != nil {
				t.Fatal(err)
			}
			in := caddy.CaddyfileInput{Filepath: "Corefile", ServerTypeName: "dns", Contents: corefile.Render(f.opts)}
			if err := caddy.ValidateAndExecuteDirectives(in, nil, true); err != nil {
				t.Errorf("role %q: %v", role, err)
			}
		}
	})
}
