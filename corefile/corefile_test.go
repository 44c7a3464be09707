package corefile

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy/caddyfile"
)

func defaults() Options {
	return Options{
		DataDir:       DefaultDataDir,
		ClusterCIDR:   DefaultClusterCIDR,
		ContainerCIDR: DefaultContainerCIDR,
		DNSAddr:       DefaultDNSAddr,
		MetricsAddr:   DefaultMetricsAddr,
		ReadyAddr:     DefaultReadyAddr,
		StaleBudget:   DefaultStaleBudget,
	}
}

// apiFiles are existing files for the API's file flags.
func apiFiles(t *testing.T) (token, readToken, cert, key string) {
	dir := t.TempDir()
	var files [4]string
	for i, name := range []string{"token", "read-token", "api.crt", "api.key"} {
		files[i] = filepath.Join(dir, name)
		if err := os.WriteFile(files[i], []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return files[0], files[1], files[2], files[3]
}

func TestRender(t *testing.T) {
	token, readToken, cert, key := apiFiles(t)
	tests := []struct {
		name    string
		edit    func(*Options)
		want    []string
		notWant []string
	}{
		{"production", func(*Options) {}, []string{
			"rune:53 10.96.0.0/16:53 {\n\tbind 127.0.0.123\n",
			"\trune {\n\t\tdata_dir /var/lib/rune\n\t\tcluster_cidr 10.96.0.0/16\n\t\tcontainer_cidr 10.88.0.0/16\n\t\tstale_budget 30s\n\t\tttl 5\n\t}\n",
			"\tdataplane\n\t# Network policy",
			"\trunegate\n", "\tprometheus 127.0.0.1:9100\n", "\tready 127.0.0.1:8181\n",
			".:53 {\n\tbind 127.0.0.123\n",
			"\tacl {\n\t\tallow net 127.0.0.0/8 ::1/128 10.96.0.0/16\n\t\tblock\n\t}\n\tforward . /etc/resolv.conf\n\tcache 30\n\tloop\n",
		}, []string{"\tdev_mode", "api ", "node_name", "ingress", "Dev mode"}},
		{"recursion", func(o *Options) {
			o.HostNetworks = []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16"), netip.MustParsePrefix("fe80::/64")}
			o.DNSAllow = []string{"198.51.100.0/24", "2001:db8::/32"}
		}, []string{"\t\tallow net 127.0.0.0/8 ::1/128 10.96.0.0/16 172.17.0.0/16 fe80::/64 198.51.100.0/24 2001:db8::/32\n\t\tblock\n"}, nil},
		{"dev mode edge", func(o *Options) { o.DevMode, o.NodeRole, o.DataDir = true, RoleEdge, "/home/u/.local/state/rune" }, []string{
			"\t\tdev_mode\n\t\tttl 5\n", "\t\tdev_mode\n\t\tttl 5\n\t}\n\t# The data plane", "\tnetpolicy\n\t# Edge node", "data_dir /home/u/.local/state/rune\n",
			"ingress on 127.0.0.1:8080 and 127.0.0.1:8443", "\tingress\n\t# SERVFAIL",
		}, []string{"(nftables)"}},
		{"kernel forwarding", func(o *Options) { o.Forward = "kernel" }, []string{"\tdataplane {\n\t\tforward kernel\n\t}\n"}, nil},
		{"edge", func(o *Options) { o.NodeRole = RoleEdge }, []string{"\tingress\n", "ingress on :80 and :443", "(nftables)"}, []string{"\tdev_mode", "acme_", "vip_hold"}},
		{"dev mode ingress on every address", func(o *Options) {
			o.DevMode, o.NodeRole, o.IngressHTTP, o.IngressHTTPS = true, RoleEdge, ":8080", "0.0.0.0:8443"
		}, []string{"ingress on :8080 and 0.0.0.0:8443", "\tingress {\n\t\thttp :8080\n\t\thttps 0.0.0.0:8443\n\t}\n"}, nil},
		{"acme and vip hold", func(o *Options) {
			o.NodeRole, o.ACMEEmail, o.ACMECA, o.ACMECARoot, o.VIPHold = RoleEdge, "ops@example.com", "staging", "/etc/rune/roots.pem", 10*time.Minute
		}, []string{"\t\tacme_email ops@example.com\n\t\tacme_ca staging\n\t\tacme_ca_root /etc/rune/roots.pem\n\t}", "\t\tvip_hold 10m0s\n"}, nil},
		{"addresses", func(o *Options) {
			o.DNSAddr, o.MetricsAddr, o.APIAddr, o.APITokenFile, o.NodeName = ":5353", "0.0.0.0:9153", "tcp://127.0.0.1:7070", token, "n1"
			o.ClusterCIDR, o.StaleBudget = "100.64.0.0/12", 5*time.Second
		}, []string{
			"rune:5353 100.64.0.0/12:5353 {\n\t# Opens", ".:5353 {\n\t# Not an open resolver", "prometheus 0.0.0.0:9153",
			"api tcp://127.0.0.1:7070\n\t\ttoken_file " + token + "\n", "node_name n1\n", "stale_budget 5s\n",
		}, []string{"bind", "debug", "tls "}},
		{"tls api with a read-only token and debug", func(o *Options) {
			o.APIAddr, o.APITokenFile, o.APIReadTokenFile, o.APITLSCert, o.APITLSKey, o.DebugAPI = "tcp://127.0.0.1:7070", token, readToken, cert, key, true
		}, []string{"\t\ttoken_file " + token + "\n\t\tread_token_file " + readToken + "\n\t\ttls " + cert + " " + key + "\n\t\tdebug\n"}, nil},
		{"docker", func(o *Options) { o.Docker, o.DNSBind = "default", []string{"172.17.0.1"} }, []string{"\t\tdocker\n", "\tbind 127.0.0.123 172.17.0.1\n"}, nil},
		{"docker host", func(o *Options) { o.Docker = "tcp://127.0.0.1:2375" }, []string{"\t\tdocker tcp://127.0.0.1:2375\n"}, nil},
		{"disk reserve", func(o *Options) { o.DiskReserve = "1GiB" }, []string{"\t\tstale_budget 30s\n\t\tdisk_reserve 1GiB\n"}, nil},
		{"ipv6 bind", func(o *Options) { o.DNSAddr = "[::1]:53" }, []string{"\tbind ::1\n"}, nil},
		{"cluster", func(o *Options) { o.ClusterAddr, o.Bootstrap = "10.0.0.1:7946", true }, []string{"\t\tcluster_addr 10.0.0.1:7946\n\t\tbootstrap\n"}, nil},
		{"node network", func(o *Options) {
			o.ContainerCIDR, o.NodeSubnet, o.NoRoutes, o.NodeGrace = "10.89.0.0/16", "10.89.7.0/24", true, time.Minute
		}, []string{"\t\tcontainer_cidr 10.89.0.0/16\n\t\tnode_subnet 10.89.7.0/24\n\t\troutes off\n\t\tnode_grace 1m0s\n"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := defaults()
			tc.edit(&o)
			if err := o.Validate(); err != nil {
				t.Fatal(err)
			}
			out := Render(o)
			for _, w := range tc.want {
				if !bytes.Contains(out, []byte(w)) {
					t.Errorf("missing %q in\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if bytes.Contains(out, []byte(w)) {
					t.Errorf("unexpected %q in\n%s", w, out)
				}
			}
			// It must parse with runed's directive list, every directive known.
			blocks, err := caddyfile.Parse("Corefile", bytes.NewReader(out), Directives)
			if err != nil {
				t.Fatalf("rendered Corefile does not parse: %v\n%s", err, out)
			}
			if len(blocks) != 2 || blocks[0].Keys[0] != "rune:"+port(o.DNSAddr) || blocks[1].Keys[0] != ".:"+port(o.DNSAddr) {
				t.Errorf("server blocks %+v", blocks)
			}
		})
	}
}

func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

func TestValidate(t *testing.T) {
	token, _, cert, key := apiFiles(t)
	tests := []struct {
		edit func(*Options)
		err  string
	}{
		{func(o *Options) { o.APIAddr = "tcp://127.0.0.1:7070" }, "--api-addr tcp://127.0.0.1:7070: a TCP API needs a bearer token: add --api-token-file FILE"},
		{func(o *Options) { o.APIAddr, o.APITokenFile = "tcp://127.0.0.1:7070", "/nonexistent/token" }, "--api-token-file: stat /nonexistent/token: no such file"},
		{func(o *Options) { o.APIReadTokenFile = token }, "--api-read-token-file needs --api-token-file"},
		{func(o *Options) { o.APIAddr, o.APITokenFile, o.APITLSCert = "tcp://127.0.0.1:7070", token, cert }, "--api-tls-cert and --api-tls-key go together"},
		{func(o *Options) { o.APITLSCert, o.APITLSKey = cert, key }, "--api-tls-cert serves a tcp:// API"},
		{func(o *Options) { o.NodeRole = "core" }, `--node-role "core"`},
		{func(o *Options) { o.DataDir = "" }, "--data-dir: must not be empty"},
		{func(o *Options) { o.DataDir = "/my data" }, `--data-dir "/my data": must not contain spaces`},
		{func(o *Options) { o.ClusterCIDR = "10.96.0.0" }, `--cluster-cidr "10.96.0.0"`},
		{func(o *Options) { o.ClusterCIDR = "fd00::/64" }, "want an IPv4 CIDR"},
		{func(o *Options) { o.DNSAddr = "127.0.0.123" }, `--dns-addr "127.0.0.123": want host:port`},
		{func(o *Options) { o.MetricsAddr = "9100" }, `--metrics-addr "9100"`},
		{func(o *Options) { o.APIAddr = "/run/rune.sock" }, `--api-addr "/run/rune.sock"`},
		{func(o *Options) { o.StaleBudget = 0 }, "--stale-budget 0s: must be positive"},
		{func(o *Options) { o.Forward = "ebpf" }, `--forward "ebpf": want proxy or kernel`},
		{func(o *Options) { o.Forward, o.DevMode = "kernel", true }, "--forward kernel: dev mode has no nftables"},
		{func(o *Options) { o.DNSAllow = []string{"10.1.2.3"} }, `--dns-allow "10.1.2.3": want a CIDR`},
		{func(o *Options) { o.DNSAllow = []string{"10.1.2.0/24", "any"} }, `--dns-allow "any": want a CIDR`},
		{func(o *Options) { o.NodeRole, o.IngressHTTP = RoleEdge, "8080" }, `--ingress-http "8080": want [host]:port`},
		{func(o *Options) { o.IngressHTTPS = ":8443" }, "--ingress-https: only an edge node runs the ingress"},
		{func(o *Options) { o.DiskReserve = "1GB" }, `--disk-reserve "1GB": want a size such as 256MiB`},
		{func(o *Options) { o.ClusterAddr = "10.0.0.1" }, `--cluster-addr "10.0.0.1": want IP:PORT`},
		{func(o *Options) { o.Bootstrap = true }, "--bootstrap creates a cluster: it needs --cluster-addr"},
		{func(o *Options) { o.ContainerCIDR = "10.88.0.1/16" }, `--container-cidr "10.88.0.1/16": want an IPv4 network`},
		{func(o *Options) { o.ContainerCIDR = "10.96.128.0/20" }, "--container-cidr 10.96.128.0/20 overlaps --cluster-cidr 10.96.0.0/16"},
		{func(o *Options) { o.NodeSubnet = "10.89.0.0/24" }, `--node-subnet "10.89.0.0/24": want a network (no host bits) inside --container-cidr 10.88.0.0/16`},
		{func(o *Options) { o.NodeGrace = -time.Second }, "--node-grace -1s: must not be negative"},
	}
	for _, tc := range tests {
		o := defaults()
		tc.edit(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("error %v, want %q", err, tc.err)
		}
	}
}

// The host's networks: every address of a non-loopback interface lies in
// one, each once, masked and in order.
func TestInterfaceNetworks(t *testing.T) {
	nets, err := InterfaceNetworks()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSortedFunc(nets, netip.Prefix.Compare) || len(slices.Compact(slices.Clone(nets))) != len(nets) {
		t.Errorf("networks %v: not sorted, or with duplicates", nets)
	}
	for _, p := range nets {
		if p != p.Masked() || p.Addr().IsLoopback() {
			t.Errorf("networks %v: %s is unmasked or loopback", nets, p)
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.(*net.IPNet).IP)
		if ip = ip.Unmap(); !ip.IsLoopback() && !slices.ContainsFunc(nets, func(p netip.Prefix) bool { return p.Contains(ip) }) {
			t.Errorf("address %s of this host is in none of %v", a, nets)
		}
	}
}

func TestDevDataDir(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/xdg")
	if d := DevDataDir(); d != "/xdg/rune" {
		t.Errorf("DevDataDir() = %s with XDG_STATE_HOME=/xdg", d)
	}
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if d := DevDataDir(); d != "/home/u/.local/state/rune" {
		t.Errorf("DevDataDir() = %s with HOME=/home/u", d)
	}
}
