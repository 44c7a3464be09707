// Package corefile holds runed's CoreDNS directive order and renders the
// Corefile runed runs when it is started without -conf, from its flags.
//
// The rendered Corefile is meant to be read: `runed --print-corefile` is how
// an operator gets a starting point for their own, so it carries comments.
package corefile

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"
)

// Options are runed's flags as far as the Corefile is concerned.
type Options struct {
	DevMode     bool
	NodeRole    string // "" or "edge"
	NodeName    string // "" for the host name
	DataDir     string
	ClusterCIDR string
	DNSAddr     string // host:port; an empty host listens on every address
	MetricsAddr string
	ReadyAddr   string
	APIAddr     string // "" for unix://DATA_DIR/runed.sock
	// APITokenFile holds the API's bearer token (required for tcp://),
	// APIReadTokenFile a second token that may only list and watch.
	APITokenFile, APIReadTokenFile string
	// APITLSCert and APITLSKey serve a tcp:// API over TLS.
	APITLSCert, APITLSKey string
	// DebugAPI enables fault injection (`rune debug pause-watch`).
	DebugAPI    bool
	StaleBudget time.Duration
	VIPHold     time.Duration // 0: the default (1h)
	DiskReserve string        // free space the store keeps (ParseSize); "": the default
	// Forward is how the data plane moves TCP: "" or "proxy" (the L4
	// proxy), or "kernel" (nftables DNAT for ports without an ingress policy).
	Forward string
	// Docker: "" off, "default" the local Engine, else its address.
	Docker string
	// DNSBind lists more addresses DNS listens on besides DNSAddr's host:
	// containers cannot reach 127.0.0.123 (it is their own loopback), so
	// they need e.g. the Docker bridge's gateway address.
	DNSBind []string
	// DNSAllow lists more source networks (CIDRs) recursion is offered to,
	// besides loopback, HostNetworks and the cluster CIDR.
	DNSAllow []string
	// HostNetworks are the networks of this host's interfaces, offered
	// recursion as BIND's localnets are: the caller reads them (see
	// InterfaceNetworks) so that Render stays a function of its input.
	HostNetworks []netip.Prefix
	// ACME settings of the edge ingress; empty: its defaults (Let's
	// Encrypt production, no email, the system roots).
	ACMEEmail, ACMECA, ACMECARoot string
	// IngressHTTP and IngressHTTPS are the edge ingress's listen
	// addresses; empty: its defaults (:80/:443, dev mode 127.0.0.1:8080 and
	// 127.0.0.1:8443).
	IngressHTTP, IngressHTTPS string
	// ClusterAddr (IP:PORT) makes the node a Raft cluster member on that
	// mutual-TLS port; Bootstrap creates the cluster, Join (a member's
	// cluster address) with JoinToken joins one.
	ClusterAddr string
	Bootstrap   bool
	Join        string
	JoinToken   string
	// ContainerCIDR is split into per-node /24 container subnets;
	// NodeSubnet is this node's explicit one ("": the lowest free).
	ContainerCIDR string
	NodeSubnet    string
	// NoRoutes (--routes=false) leaves out the routes to peers' container
	// subnets via their cluster addresses (the host-gateway model).
	NoRoutes bool
	// NodeGrace: missing heartbeats this long marks a node's instances
	// unready (0: the default, 30s).
	NodeGrace time.Duration
}

// Defaults for runed's flags.
const (
	DefaultClusterCIDR = "10.96.0.0/16"
	// DefaultContainerCIDR is clear of Docker's 172.17.0.0/16 and of the
	// default VIP range (podman's default bridge uses it too: on a podman
	// host pick another).
	DefaultContainerCIDR = "10.88.0.0/16"
	DefaultDNSAddr       = "127.0.0.123:53"
	DefaultMetricsAddr   = "127.0.0.1:9100"
	DefaultReadyAddr     = "127.0.0.1:8181"
	DefaultStaleBudget   = 30 * time.Second
	DefaultDataDir       = "/var/lib/rune"
	RoleEdge             = "edge"
)

// DevDataDir is where dev mode keeps its state: the user's state directory
// ($XDG_STATE_HOME/rune, else ~/.local/state/rune), else ./.rune. The rune CLI
// looks for runed.sock in the same places.
func DevDataDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "rune")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "rune")
	}
	return ".rune"
}

// IngressHTTPAddr is where the edge ingress serves HTTP: --ingress-http,
// else the ingress plugin's default for the mode.
func (o Options) IngressHTTPAddr() string {
	return o.ingressAddr(o.IngressHTTP, "127.0.0.1:8080", ":80")
}

// IngressHTTPSAddr is IngressHTTPAddr for HTTPS.
func (o Options) IngressHTTPSAddr() string {
	return o.ingressAddr(o.IngressHTTPS, "127.0.0.1:8443", ":443")
}

func (o Options) ingressAddr(set, dev, production string) string {
	switch {
	case set != "":
		return set
	case o.DevMode:
		return dev
	}
	return production
}

// Validate reports the first option that cannot be rendered, naming its flag.
func (o *Options) Validate() error {
	if o.NodeRole != "" && o.NodeRole != RoleEdge {
		return fmt.Errorf("--node-role %q: want \"\" or %q", o.NodeRole, RoleEdge)
	}
	if o.DataDir == "" {
		return fmt.Errorf("--data-dir: must not be empty")
	}
	if p, err := netip.ParsePrefix(o.ClusterCIDR); err != nil || !p.Addr().Is4() {
		return fmt.Errorf("--cluster-cidr %q: want an IPv4 CIDR such as %s", o.ClusterCIDR, DefaultClusterCIDR)
	}
	for _, a := range []struct{ flag, addr string }{{"--dns-addr", o.DNSAddr}, {"--metrics-addr", o.MetricsAddr}, {"--ready-addr", o.ReadyAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%s %q: want host:port, e.g. %s", a.flag, a.addr, DefaultDNSAddr)
		}
	}
	for _, a := range []struct{ flag, addr, eg string }{{"--ingress-http", o.IngressHTTP, ":8080"}, {"--ingress-https", o.IngressHTTPS, ":8443"}} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%s %q: want [host]:port, e.g. %s (every address)", a.flag, a.addr, a.eg)
		}
		if o.NodeRole != RoleEdge {
			return fmt.Errorf("%s: only an edge node runs the ingress; add --node-role=edge (or --dev-mode)", a.flag)
		}
	}
	if o.APIAddr != "" && !strings.HasPrefix(o.APIAddr, "unix://") && !strings.HasPrefix(o.APIAddr, "tcp://") {
		return fmt.Errorf("--api-addr %q: want unix:///path/to/runed.sock or tcp://host:port", o.APIAddr)
	}
	if err := o.validateAPI(); err != nil {
		return err
	}
	if o.Forward != "" && o.Forward != "proxy" && o.Forward != "kernel" {
		return fmt.Errorf("--forward %q: want proxy or kernel", o.Forward)
	}
	if o.Forward == "kernel" && o.DevMode {
		return fmt.Errorf("--forward kernel: dev mode has no nftables; drop --dev-mode or --forward")
	}
	if o.StaleBudget <= 0 {
		return fmt.Errorf("--stale-budget %s: must be positive", o.StaleBudget)
	}
	for _, a := range o.DNSBind {
		if _, err := netip.ParseAddr(a); err != nil {
			return fmt.Errorf("--dns-bind %q: want an IP address", a)
		}
	}
	for _, c := range o.DNSAllow {
		if _, err := netip.ParsePrefix(c); err != nil {
			return fmt.Errorf("--dns-allow %q: want a CIDR such as 192.0.2.0/24", c)
		}
	}
	if host, _, _ := net.SplitHostPort(o.DNSAddr); len(o.DNSBind) > 0 && host == "" {
		return fmt.Errorf("--dns-bind needs --dns-addr with a host: with none DNS already listens on every address")
	}
	if o.Docker != "" && o.Docker != "default" && !strings.HasPrefix(o.Docker, "unix://") && !strings.HasPrefix(o.Docker, "tcp://") {
		return fmt.Errorf("--docker-host %q: want unix:///path/to/docker.sock or tcp://host:port", o.Docker)
	}
	if o.ClusterAddr != "" {
		if _, _, err := net.SplitHostPort(o.ClusterAddr); err != nil {
			return fmt.Errorf("--cluster-addr %q: want IP:PORT, an address the other nodes reach", o.ClusterAddr)
		}
	} else if o.Bootstrap {
		return fmt.Errorf("--bootstrap creates a cluster: it needs --cluster-addr")
	} else if o.Join != "" {
		return fmt.Errorf("--join joins a cluster: it needs --cluster-addr, this node's own address in it")
	}
	switch {
	case o.Bootstrap && o.Join != "":
		return fmt.Errorf("--bootstrap creates a new cluster, --join joins an existing one: give one of them")
	case o.JoinToken != "" && o.Join == "":
		return fmt.Errorf("--join-token needs --join, the cluster address of a member to join through")
	}
	if o.Join != "" {
		if _, _, err := net.SplitHostPort(o.Join); err != nil {
			return fmt.Errorf("--join %q: want IP:PORT, a member's --cluster-addr", o.Join)
		}
	}
	if o.VIPHold < 0 {
		return fmt.Errorf("--vip-hold %s: must not be negative", o.VIPHold)
	}
	if err := o.validateNodeNetwork(); err != nil {
		return err
	}
	if _, err := ParseSize(o.DiskReserve); o.DiskReserve != "" && err != nil {
		return fmt.Errorf("--disk-reserve %q: %v", o.DiskReserve, err)
	}
	for _, v := range []struct{ flag, val string }{{"--data-dir", o.DataDir}, {"--node-name", o.NodeName}, {"--acme-email", o.ACMEEmail}, {"--acme-ca", o.ACMECA}, {"--acme-ca-root", o.ACMECARoot}, {"--ingress-http", o.IngressHTTP}, {"--ingress-https", o.IngressHTTPS},
		{"--api-token-file", o.APITokenFile}, {"--api-read-token-file", o.APIReadTokenFile}, {"--api-tls-cert", o.APITLSCert}, {"--api-tls-key", o.APITLSKey}} {
		if strings.ContainsAny(v.val, " \t\n\"{}#") {
			return fmt.Errorf("%s %q: must not contain spaces, quotes, braces or #", v.flag, v.val)
		}
	}
	return nil
}

// InterfaceNetworks returns the networks of this host's interfaces (the
// prefixes of their addresses), masked, without duplicates, sorted.
func InterfaceNetworks() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("interface addresses: %w", err)
	}
	var nets []netip.Prefix
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, _ := netip.AddrFromSlice(n.IP)
		ones, _ := n.Mask.Size()
		if ip = ip.Unmap(); ip.Is4() && ones > 32 {
			ones -= 96
		}
		if p := netip.PrefixFrom(ip, ones).Masked(); p.IsValid() && !ip.IsLoopback() {
			nets = append(nets, p)
		}
	}
	slices.SortFunc(nets, netip.Prefix.Compare)
	return slices.Compact(nets), nil
}

// validateAPI checks the API's flags: a TCP API needs a token, TLS a
// certificate and its key, and every file must exist.
func (o *Options) validateAPI() error {
	tcp := strings.HasPrefix(o.APIAddr, "tcp://")
	switch {
	case tcp && o.APITokenFile == "":
		return fmt.Errorf("--api-addr %s: a TCP API needs a bearer token: add --api-token-file FILE (a file holding the token, e.g. made with: openssl rand -hex 32 > FILE), or use a unix:// socket", o.APIAddr)
	case o.APIReadTokenFile != "" && o.APITokenFile == "":
		return fmt.Errorf("--api-read-token-file needs --api-token-file: without a full token every request may write")
	case (o.APITLSCert == "") != (o.APITLSKey == ""):
		return fmt.Errorf("--api-tls-cert and --api-tls-key go together: give both or neither")
	case o.APITLSCert != "" && !tcp:
		return fmt.Errorf("--api-tls-cert serves a tcp:// API: add --api-addr tcp://HOST:PORT")
	}
	for _, f := range []struct{ flag, file string }{{"--api-token-file", o.APITokenFile}, {"--api-read-token-file", o.APIReadTokenFile}, {"--api-tls-cert", o.APITLSCert}, {"--api-tls-key", o.APITLSKey}} {
		if f.file == "" {
			continue
		}
		if _, err := os.Stat(f.file); err != nil {
			return fmt.Errorf("%s: %w", f.flag, err)
		}
	}
	return nil
}

// Render returns the Corefile for o, which must be valid.
func Render(o Options) []byte {
	host, port, _ := net.SplitHostPort(o.DNSAddr)
	var b bytes.Buffer
	if err := tmpl.Execute(&b, struct {
		Options
		Host, Port string
	}{o, host, port}); err != nil {
		panic(err) // the template is static and its data plain values
	}
	return b.Bytes()
}

var tmpl = template.Must(template.New("Corefile").Parse(`
{{- define "node"}}
		data_dir {{.DataDir}}
		cluster_cidr {{.ClusterCIDR}}
		container_cidr {{.ContainerCIDR}}
{{- if .NodeSubnet}}
		node_subnet {{.NodeSubnet}}
{{- end}}
{{- if .NoRoutes}}
		routes off
{{- end}}
{{- if .NodeGrace}}
		node_grace {{.NodeGrace}}
{{- end}}
{{- if .APIAddr}}
		api {{.APIAddr}}
{{- end}}
{{- if .APITokenFile}}
		token_file {{.APITokenFile}}
{{- end}}
{{- if .APIReadTokenFile}}
		read_token_file {{.APIReadTokenFile}}
{{- end}}
{{- if .APITLSCert}}
		tls {{.APITLSCert}} {{.APITLSKey}}
{{- end}}
{{- if .DebugAPI}}
		debug
{{- end}}
		stale_budget {{.StaleBudget}}
{{- if .VIPHold}}
		vip_hold {{.VIPHold}}
{{- end}}
{{- if .DiskReserve}}
		disk_reserve {{.DiskReserve}}
{{- end}}
{{- if eq .Docker "default"}}
		docker
{{- else if .Docker}}
		docker {{.Docker}}
{{- end}}
{{- if .NodeName}}
		node_name {{.NodeName}}
{{- end}}
{{- if .ClusterAddr}}
		cluster_addr {{.ClusterAddr}}
{{- end}}
{{- if .Bootstrap}}
		bootstrap
{{- end}}
{{- if .Join}}
		join {{.Join}}
{{- end}}
{{- if .JoinToken}}
		join_token {{.JoinToken}}
{{- end}}
{{- if .DevMode}}
		dev_mode
{{- end}}
{{- end -}}
# Corefile rendered by runed from its flags. Print it with
# "runed --print-corefile [flags] > Corefile", edit it, run "runed -conf Corefile".
# Our directives and their options are documented in Corefile.example;
# CoreDNS's own at https://coredns.io/plugins/.
{{- if .DevMode}}
#
# Dev mode: .rune names answer 127.0.0.1 (reach services through port
# forwards), no nftables, state lives in {{.DataDir}}.
{{- end}}

# Service names <svc>.<ns>.rune and the reverse zone(s) of the cluster CIDR.
rune:{{.Port}} {{.ClusterCIDR}}:{{.Port}} {
{{- if .Host}}
	bind {{.Host}}{{range .DNSBind}} {{.}}{{end}}
{{- end}}
	# Opens this node's runtime (store, cluster view, API) and answers from it.
	# Past stale_budget of lag behind the log it answers SERVFAIL (fail closed).
	# The data-path directives below use the runtime it opens.
	rune {
{{- template "node" .}}
		ttl 5
	}
	# The data plane: VIP interception{{if not .DevMode}} (nftables){{end}} and the L4 proxy.
{{- if eq .Forward "kernel"}}
	dataplane {
		forward kernel
	}
{{- else}}
	dataplane
{{- end}}
	# Network policy: compiled rule tables judged by the proxy on every new
	# connection{{if not .DevMode}}, and nftables filter chains for direct container-IP traffic{{end}}.
	netpolicy
{{- if eq .NodeRole "edge"}}
	# Edge node: HTTP/HTTPS ingress on {{.IngressHTTPAddr}} and {{.IngressHTTPSAddr}} with ACME certificates.
{{- if or .ACMEEmail .ACMECA .ACMECARoot .IngressHTTP .IngressHTTPS}}
	ingress {
{{- if .IngressHTTP}}
		http {{.IngressHTTP}}
{{- end}}
{{- if .IngressHTTPS}}
		https {{.IngressHTTPS}}
{{- end}}
{{- if .ACMEEmail}}
		acme_email {{.ACMEEmail}}
{{- end}}
{{- if .ACMECA}}
		acme_ca {{.ACMECA}}
{{- end}}
{{- if .ACMECARoot}}
		acme_ca_root {{.ACMECARoot}}
{{- end}}
	}
{{- else}}
	ingress
{{- end}}
{{- end}}
	# SERVFAIL with EDE "Not Ready" until the data path can carry traffic,
	# so no client is handed a VIP that would hang.
	runegate
	# rune_* and coredns_* metrics on /metrics.
	prometheus {{.MetricsAddr}}
	# /ready answers 200 once the data path is ready, 503 until then.
	ready {{.ReadyAddr}}
	# Picks up edits of a -conf Corefile without a restart.
	reload
	errors
}

# Everything else goes to the upstreams of /etc/resolv.conf, with CoreDNS's
# forward, a cache, and loop detection (should resolv.conf point back here).
.:{{.Port}} {
{{- if .Host}}
	bind {{.Host}}{{range .DNSBind}} {{.}}{{end}}
{{- end}}
	# Not an open resolver: recursion only for loopback, the cluster CIDR,
	# the networks of this host's interfaces (as BIND's allow-recursion
	# { localhost; localnets; }) and --dns-allow; everyone else is REFUSED.
	# runed renders the interface networks when it starts and again at every
	# reload check (a new network is allowed within a minute); in a -conf
	# Corefile they are the ones written here. .rune names stay open.
	acl {
		allow net 127.0.0.0/8 ::1/128 {{.ClusterCIDR}}{{range .HostNetworks}} {{.}}{{end}}{{range .DNSAllow}} {{.}}{{end}}
		block
	}
	forward . /etc/resolv.conf
	cache 30
	loop
	prometheus {{.MetricsAddr}}
	errors
}
`))

// validateNodeNetwork checks the container network's flags: a private IPv4
// container CIDR clear of the VIP range, and a node subnet inside it.
func (o *Options) validateNodeNetwork() error {
	cc, err := netip.ParsePrefix(o.ContainerCIDR)
	if err != nil || !cc.Addr().Is4() || cc.Masked() != cc {
		return fmt.Errorf("--container-cidr %q: want an IPv4 network such as %s", o.ContainerCIDR, DefaultContainerCIDR)
	}
	if vips, _ := netip.ParsePrefix(o.ClusterCIDR); vips.Overlaps(cc) {
		return fmt.Errorf("--container-cidr %s overlaps --cluster-cidr %s: container addresses and VIPs need separate ranges", cc, vips)
	}
	if o.NodeSubnet != "" {
		p, err := netip.ParsePrefix(o.NodeSubnet)
		if err != nil || p.Masked() != p || !cc.Contains(p.Addr()) || p.Bits() < cc.Bits() {
			return fmt.Errorf("--node-subnet %q: want a network (no host bits) inside --container-cidr %s, e.g. %s", o.NodeSubnet, cc, netip.PrefixFrom(cc.Addr(), 24))
		}
	}
	if o.NodeGrace < 0 {
		return fmt.Errorf("--node-grace %s: must not be negative", o.NodeGrace)
	}
	return nil
}
