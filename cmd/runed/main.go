// Command runed is the Rune node daemon: a CoreDNS build whose directive list
// adds Rune's plugins to CoreDNS's own (see corefile.Directives). Every
// subsystem is a Corefile directive; without -conf, runed renders its
// Corefile from its flags.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// CoreDNS's plugins, as listed in corefile.Directives.
	_ "github.com/coredns/coredns/plugin/acl"
	_ "github.com/coredns/coredns/plugin/any"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/bufsize"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/cancel"
	_ "github.com/coredns/coredns/plugin/chaos"
	_ "github.com/coredns/coredns/plugin/debug"
	_ "github.com/coredns/coredns/plugin/dnstap"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/file"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/header"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/local"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metadata"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/minimal"
	_ "github.com/coredns/coredns/plugin/multisocket"
	_ "github.com/coredns/coredns/plugin/nsid"
	_ "github.com/coredns/coredns/plugin/pprof"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/rewrite"
	_ "github.com/coredns/coredns/plugin/root"
	_ "github.com/coredns/coredns/plugin/template"
	_ "github.com/coredns/coredns/plugin/timeouts"
	_ "github.com/coredns/coredns/plugin/transfer"
	_ "github.com/coredns/coredns/plugin/whoami"

	"github.com/runenet/runenet/corefile"
	"github.com/runenet/runenet/internal/version"
	_ "github.com/runenet/runenet/plugin/dataplane"
	_ "github.com/runenet/runenet/plugin/ingress"
	_ "github.com/runenet/runenet/plugin/netpolicy"
	runeplugin "github.com/runenet/runenet/plugin/rune"
	_ "github.com/runenet/runenet/plugin/rune/inprocess"
	_ "github.com/runenet/runenet/plugin/runegate"
)

func init() { dnsserver.Directives = corefile.Directives }

// runedFlags are the flags runed adds to CoreDNS's (-conf, -plugins, ...).
type runedFlags struct {
	opts   corefile.Options
	print  bool
	docker bool
	routes bool
}

// corefileFlags render into the Corefile, so they make no sense with -conf.
var corefileFlags = []string{"dev-mode", "node-role", "node-name", "data-dir", "cluster-cidr", "dns-addr", "metrics-addr", "ready-addr", "api-addr", "api-token-file", "api-read-token-file", "api-tls-cert", "api-tls-key", "debug-api", "stale-budget", "vip-hold", "disk-reserve", "forward", "acme-email", "acme-ca", "acme-ca-root", "ingress-http", "ingress-https", "docker", "docker-host", "dns-bind", "dns-allow", "cluster-addr", "bootstrap", "join", "join-token", "container-cidr", "node-subnet", "routes", "node-grace"}

func register(fs *flag.FlagSet) *runedFlags {
	f := &runedFlags{}
	fs.BoolVar(&f.opts.DevMode, "dev-mode", false, "laptop mode: .rune answers 127.0.0.1, state in the user's state directory, implies --node-role=edge")
	fs.StringVar(&f.opts.NodeRole, "node-role", "", `"" or "edge" (edge serves ingress); --dev-mode implies edge unless --node-role="" is given`)
	fs.StringVar(&f.opts.NodeName, "node-name", "", "this node's name, a DNS label (default: the host name's first label, lower-cased)")
	fs.StringVar(&f.opts.DataDir, "data-dir", "", "state directory (default "+corefile.DefaultDataDir+", with --dev-mode "+corefile.DevDataDir()+")")
	fs.StringVar(&f.opts.ClusterCIDR, "cluster-cidr", corefile.DefaultClusterCIDR, "range service VIPs are allocated from (RFC 1918 or 100.64.0.0/10)")
	fs.StringVar(&f.opts.DNSAddr, "dns-addr", corefile.DefaultDNSAddr, "DNS listen address (host:port; empty host: every address)")
	fs.StringVar(&f.opts.MetricsAddr, "metrics-addr", corefile.DefaultMetricsAddr, "Prometheus /metrics listen address")
	fs.StringVar(&f.opts.ReadyAddr, "ready-addr", corefile.DefaultReadyAddr, "/ready listen address (200 once the data path is ready)")
	fs.StringVar(&f.opts.APIAddr, "api-addr", "", "API listen address, unix:///path or tcp://host:port (default unix://DATA_DIR/runed.sock)")
	fs.StringVar(&f.opts.APITokenFile, "api-token-file", "", "file holding the API's bearer token; required with --api-addr tcp://")
	fs.StringVar(&f.opts.APIReadTokenFile, "api-read-token-file", "", "file holding a second API token that may only list and watch (for a stock CoreDNS's rune { endpoint ... })")
	fs.StringVar(&f.opts.APITLSCert, "api-tls-cert", "", "PEM certificate: serve the tcp:// API over TLS (with --api-tls-key)")
	fs.StringVar(&f.opts.APITLSKey, "api-tls-key", "", "PEM private key of --api-tls-cert")
	fs.BoolVar(&f.opts.DebugAPI, "debug-api", false, "enable fault injection over the API (rune debug pause-watch); for tests, never in production")
	fs.DurationVar(&f.opts.StaleBudget, "stale-budget", corefile.DefaultStaleBudget, "lag behind the log past which answers fail closed")
	fs.DurationVar(&f.opts.VIPHold, "vip-hold", 0, "how long a deleted service's VIP stays reserved for it (default 1h)")
	fs.StringVar(&f.opts.DiskReserve, "disk-reserve", "", "free space the store keeps on its disk, refusing writes below it (e.g. 512MiB; 0: off; default 256MiB)")
	fs.StringVar(&f.opts.Forward, "forward", "proxy", "how TCP to service VIPs is forwarded: proxy (L4 proxy: least-loaded balancing, retries, per-connection metrics) or kernel (nftables DNAT for ports without an ingress policy: full throughput, no sockets held)")
	fs.StringVar(&f.opts.ACMEEmail, "acme-email", "", "edge: contact email for the ACME account")
	fs.StringVar(&f.opts.ACMECA, "acme-ca", "", "edge: ACME directory URL, or production / staging (Let's Encrypt; default production)")
	fs.StringVar(&f.opts.ACMECARoot, "acme-ca-root", "", "edge: PEM file of extra roots to trust for the ACME server (a private or test CA)")
	fs.StringVar(&f.opts.IngressHTTP, "ingress-http", "", "edge: ingress HTTP listen address (default :80; with --dev-mode 127.0.0.1:8080, loopback only: :8080 exposes it to the network)")
	fs.StringVar(&f.opts.IngressHTTPS, "ingress-https", "", "edge: ingress HTTPS listen address (default :443; with --dev-mode 127.0.0.1:8443, loopback only: :8443 exposes it to the network)")
	fs.BoolVar(&f.docker, "docker", false, "take this node's instances from the local Docker Engine (containers labelled rune.service)")
	fs.StringVar(&f.opts.Docker, "docker-host", "", "Docker Engine address for --docker (default $DOCKER_HOST, else unix:///var/run/docker.sock)")
	fs.Func("dns-bind", "another address DNS listens on, e.g. the Docker bridge gateway so containers can reach runed (repeatable)", func(v string) error {
		f.opts.DNSBind = append(f.opts.DNSBind, v)
		return nil
	})
	fs.Func("dns-allow", "a network (CIDR) offered recursion besides loopback, the cluster CIDR and this host's interface networks; others are REFUSED for names outside .rune (repeatable)", func(v string) error {
		f.opts.DNSAllow = append(f.opts.DNSAllow, v)
		return nil
	})
	fs.StringVar(&f.opts.ClusterAddr, "cluster-addr", "", "IP:PORT of this node in a Raft cluster (all cluster traffic, mutual TLS); without it the log is single-node")
	fs.BoolVar(&f.opts.Bootstrap, "bootstrap", false, "with --cluster-addr: create a new cluster (and its CA) with this node as its first voter")
	fs.StringVar(&f.opts.Join, "join", "", "with --cluster-addr and --join-token: join the cluster through the member at this IP:PORT (its --cluster-addr); ignored once the data dir belongs to a cluster")
	fs.StringVar(&f.opts.JoinToken, "join-token", "", "for --join: the token rune cluster join-token printed")
	fs.StringVar(&f.opts.ContainerCIDR, "container-cidr", corefile.DefaultContainerCIDR, "cluster-wide range node container subnets are carved from, a /24 per node (set once, when the cluster is created)")
	fs.StringVar(&f.opts.NodeSubnet, "node-subnet", "", "this node's container subnet, inside --container-cidr (default: the lowest free /24, kept across restarts)")
	fs.BoolVar(&f.routes, "routes", true, "route peers' container subnets via their cluster addresses (nodes on one layer-2 network); false if another routing setup does it")
	fs.DurationVar(&f.opts.NodeGrace, "node-grace", 0, "how long a node may miss heartbeats before the leader marks its instances unready (default 30s)")
	fs.BoolVar(&f.print, "print-corefile", false, "print the Corefile these flags render and exit")
	return f
}

// finish applies the defaults that depend on other flags and validates.
func (f *runedFlags) finish(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if set["conf"] {
		for _, name := range append(corefileFlags, "print-corefile") {
			if set[name] {
				return fmt.Errorf("--%s renders the Corefile and cannot be combined with -conf; set it in the Corefile instead (see runed --print-corefile)", name)
			}
		}
		return nil
	}
	f.opts.NoRoutes = !f.routes
	switch {
	case f.docker && f.opts.Docker == "":
		f.opts.Docker = "default"
	case !f.docker && f.opts.Docker != "":
		return fmt.Errorf("--docker-host needs --docker")
	}
	if f.opts.DevMode && !set["node-role"] {
		f.opts.NodeRole = corefile.RoleEdge
	}
	if !set["data-dir"] {
		f.opts.DataDir = corefile.DefaultDataDir
		if f.opts.DevMode {
			f.opts.DataDir = corefile.DevDataDir()
		}
	}
	return f.opts.Validate()
}

// parse parses runed's command line into fs, which holds CoreDNS's flags,
// and returns runed's flags and the arguments to leave to coremain.Run: it
// parses its command line again, and a repeatable flag (--dns-bind) would
// collect every value twice. So it gets only CoreDNS's own flags back, plain
// values that parse to the same thing twice; runed's are parsed once, here.
func parse(fs *flag.FlagSet, args []string) (*runedFlags, []string, error) {
	core := map[string]bool{}
	fs.VisitAll(func(fl *flag.Flag) { core[fl.Name] = true })
	f := register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if err := f.finish(fs); err != nil {
		return nil, nil, err
	}
	var coreArgs []string
	fs.Visit(func(fl *flag.Flag) {
		if core[fl.Name] {
			coreArgs = append(coreArgs, "-"+fl.Name+"="+fl.Value.String())
		}
	})
	return f, coreArgs, nil
}

// render renders the Corefile of f with this host's networks as they are
// now.
func (f *runedFlags) render() ([]byte, error) {
	o := f.opts
	var err error
	if o.HostNetworks, err = corefile.InterfaceNetworks(); err != nil {
		return nil, err
	}
	return corefile.Render(o), nil
}

func main() {
	fs := flag.CommandLine // coremain registered its flags (-conf, -plugins, ...) here
	// Parse ourselves so a bad flag is one line and exit status 2.
	fs.Init(os.Args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f, coreArgs, err := parse(fs, os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(os.Stdout)
		fmt.Println("Usage: runed [flags]   (without -conf the Corefile is rendered from the flags)")
		fs.PrintDefaults()
		return
	}
	// CoreDNS's own -version would print only CoreDNS's release.
	if err == nil && fs.Lookup("version").Value.String() == "true" {
		fmt.Print(version.Get())
		return
	}
	if err == nil && f.print {
		var out []byte
		if out, err = f.render(); err == nil {
			os.Stdout.Write(out)
			return
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "runed: %v\n", err)
		os.Exit(2)
	}
	if fs.Lookup("plugins").Value.String() == "true" {
		// coremain's list, and which plugins keep rune's fast path.
		fmt.Println(caddy.DescribePlugins())
		fmt.Printf("%s\n  %s\n%s\n",
			"The rune plugin answers .rune A/AAAA/SRV/PTR queries over UDP on a fast path in front of CoreDNS's\n"+
				"server when its block holds only these plugins (and not `fastpath off`):",
			strings.Join(runeplugin.TransparentPlugins, ", "),
			"Any other plugin in the block (log, rewrite, cache, acl, ...) sees every query. See plugin/rune/README.md.")
		return
	}
	if conf := fs.Lookup("conf").Value.String(); conf != "" {
		logStartup(nil, conf)
	} else {
		logStartup(&f.opts, "")
		// Called at start and again at every check of the reload directive,
		// which restarts the server when the rendering changed: that is
		// how a network added to the host after start-up gets recursion.
		var bindOnce sync.Once
		caddy.RegisterCaddyfileLoader("flags", caddy.LoaderFunc(func(serverType string) (caddy.Input, error) {
			var err error
			bindOnce.Do(func() { err = checkBind(f.opts.DNSAddr) })
			if err != nil {
				return nil, err
			}
			contents, err := f.render()
			if err != nil {
				return nil, err
			}
			return caddy.CaddyfileInput{Contents: contents, Filepath: "<runed flags>", ServerTypeName: serverType}, nil
		}))
	}
	os.Args = append(os.Args[:1], coreArgs...)
	coremain.Run()
}

// checkBind tries the DNS address before CoreDNS does, to turn "permission
// denied" into what fixes it.
func checkBind(addr string) error {
	c, err := net.ListenPacket("udp", addr)
	if err == nil {
		return c.Close()
	}
	if errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("--dns-addr %s: binding a port below 1024 needs root or CAP_NET_BIND_SERVICE (sudo setcap cap_net_bind_service=+ep $(command -v runed)); or pick a high port, e.g. --dns-addr 127.0.0.123:5353", addr)
	}
	return fmt.Errorf("--dns-addr %s: %w", addr, err)
}
