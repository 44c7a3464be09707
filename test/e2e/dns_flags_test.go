package e2e

import (
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/proxy/netnstest"
)

// The addresses of resolverNet.
const (
	bindIP       = "192.0.2.53"  // on the node's loopback, a --dns-bind address
	nodeLocalIP  = "10.0.1.1"    // the node on the local client's network (/24)
	localIP      = "10.0.1.2"    // the local client
	nodeRemoteIP = "203.0.113.1" // the node towards the remote client (/32: no shared network)
	remoteIP     = "198.51.100.7"
	allowedIP    = "198.51.100.99" // the remote client's second address, given to --dns-allow
	upstreamIP   = "10.0.3.2"      // the resolver the node's resolv.conf names
	// The dev node's and its joiner's cluster addresses, on a link
	// between their namespaces.
	devClusterIP    = "198.18.0.1"
	joinerClusterIP = "198.18.0.2"
)

// resolverNet is a runed node's namespace with the clients a resolver
// meets around it, each in its own namespace: one on a network of the node's
// interfaces, one whose sources lie on none of them, and the upstream the
// node forwards to.
type resolverNet struct {
	node                    *dnsNode
	local, remote, upstream *netnstest.NS
}

func newResolverNet(t *testing.T) *resolverNet {
	t.Helper()
	n := newNode(t, "rune-e2e-rsv")
	r := &resolverNet{node: n, local: netnstest.New(t, "rune-e2e-lcl"), remote: netnstest.New(t, "rune-e2e-rmt"), upstream: netnstest.New(t, "rune-e2e-up")}
	netnstest.Link(t, n.ns, nodeLocalIP+"/24", r.local, localIP+"/24")
	nodeIf, remoteIf := netnstest.Link(t, n.ns, nodeRemoteIP+"/32", r.remote, remoteIP+"/32")
	r.remote.Run(t, "ip", "addr", "add", allowedIP+"/32", "dev", remoteIf)
	r.remote.Run(t, "ip", "route", "add", nodeRemoteIP+"/32", "dev", remoteIf)
	n.ns.Run(t, "ip", "route", "add", "198.51.100.0/24", "dev", nodeIf)
	netnstest.Link(t, n.ns, "10.0.3.1/24", r.upstream, upstreamIP+"/24")
	n.ns.Run(t, "ip", "addr", "add", bindIP+"/32", "dev", "lo")
	n.ns.ResolvConf(t, upstreamIP)
	startUpstream(t, r.upstream, upstreamIP+":53")
	return r
}

// client is where a query comes from: a namespace and, optionally, the
// source address to send from.
type client struct {
	name string
	ns   *netnstest.NS
	src  netip.Addr
}

func (r *resolverNet) clients() (node, local, remote, allowed client) {
	return client{"node", r.node.ns, netip.Addr{}},
		client{"local network", r.local, netip.Addr{}},
		client{"remote", r.remote, netip.MustParseAddr(remoteIP)},
		client{"remote, --dns-allow", r.remote, netip.MustParseAddr(allowedIP)}
}

// checkRecursion asks addr for a name outside .rune from c: the test
// upstream's answer when allow, else REFUSED.
func checkRecursion(t *testing.T, c client, addr string, allow bool) {
	t.Helper()
	for _, proto := range []string{"udp", "tcp"} {
		m := askFrom(t, c.ns, c.src, addr, proto, "www.example.org.", dns.TypeA)
		got := m.Rcode == dns.RcodeSuccess && len(m.Answer) == 1 && m.Answer[0].(*dns.A).A.String() == upstreamA
		if allow && !got || !allow && (m.Rcode != dns.RcodeRefused || len(m.Answer) != 0) {
			t.Errorf("recursion for %s via %s over %s (want allowed: %v):\n%v", c.name, addr, proto, allow, m)
		}
	}
}

// checkServiceA asks addr for name's A record from c over UDP and TCP.
func checkServiceA(t *testing.T, c client, addr, name, want string) {
	t.Helper()
	for _, proto := range []string{"udp", "tcp"} {
		m := askFrom(t, c.ns, c.src, addr, proto, name, dns.TypeA)
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != want {
			t.Errorf("%s A from %s via %s over %s: want %s:\n%v", name, c.name, addr, proto, want, m)
		}
	}
}

// TestDNSFromFlags starts runed from its flags — every flag that renders
// into the Corefile, between this run and the dev-mode one — rather than from
// a printed Corefile, and checks it serves on every address it binds, and
// recurses only for this host, its networks and --dns-allow.
func TestDNSFromFlags(t *testing.T) {
	r := newResolverNet(t)
	n := r.node
	dir := filepath.Dir(n.dataDir)
	sock := "unix://" + filepath.Join(dir, "api.sock")
	n.api = []string{"--api", sock}
	// --forward kernel needs forwarding on (this namespace's own sysctl).
	n.ns.Run(t, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	acmeRoot, _ := testkit.ServerCert(t) // a self-signed CA certificate
	n.flags = []string{
		"--node-role", "edge", "--node-name", "n1", "--data-dir", n.dataDir, "--cluster-cidr", "10.100.0.0/16",
		"--dns-addr", dnsAddr, "--dns-bind", bindIP, "--dns-bind", nodeLocalIP, "--dns-bind", nodeRemoteIP,
		"--dns-allow", allowedIP + "/32",
		"--metrics-addr", "127.0.0.1:9100", "--ready-addr", "127.0.0.1:8181", "--api-addr", sock,
		"--stale-budget", "5s", "--vip-hold", "10m", "--disk-reserve", "64MiB", "--forward", "kernel",
		"--ingress-http", "127.0.0.1:8088", "--ingress-https", "127.0.0.1:8448",
		// Nothing listens there: the ACME server is only asked once a
		// service is exposed, the Docker Engine is retried in the background.
		"--acme-email", "ops@example.com", "--acme-ca", "https://127.0.0.1:14000/dir", "--acme-ca-root", acmeRoot,
		"--docker", "--docker-host", "unix://" + filepath.Join(dir, "docker.sock"),
		"--container-cidr", "10.89.0.0/16", "--node-subnet", "10.89.7.0/24", "--routes=false", "--node-grace", "20s",
	}
	// The dev-mode node serves its API on TCP over TLS, with token files.
	apiDir := t.TempDir()
	token, readToken := writeToken(t, apiDir, "token", flagsToken), writeToken(t, apiDir, "read-token", flagsReadToken)
	cert, key := testkit.ServerCert(t)
	devFlags := []string{"--dev-mode", "--data-dir", "DIR", "--dns-bind", bindIP,
		"--api-addr", "tcp://" + flagsAPIAddr, "--api-token-file", token, "--api-read-token-file", readToken,
		"--api-tls-cert", cert, "--api-tls-key", key, "--debug-api",
		// The dev-mode run is also a Raft cluster: the same casts and
		// answers on the replicated backend.
		"--cluster-addr", devClusterIP + ":7300", "--bootstrap"}
	// A second runed joins the dev node's cluster, in a namespace of its
	// own linked to the dev node's.
	joinFlags := []string{"--node-name", "joiner", "--data-dir", "DIR", "--cluster-addr", joinerClusterIP + ":7300",
		"--join", devClusterIP + ":7300", "--join-token", "TOKEN"}
	checkEveryCorefileFlag(t, n.runed, slices.Concat(n.flags, devFlags, joinFlags))

	n.start(t)
	n.waitSOA(t, 30*time.Second)
	// One block at start says what runs where.
	checkStartupBlock(t, n.log.String(), []string{
		"[INFO] runed is running (production) as node n1\n",
		"\n  data dir      " + n.dataDir + "\n",
		"\n  API           " + sock + "\n",
		"\n  DNS           " + strings.Join(slices.Sorted(slices.Values([]string{dnsAddr, bindIP + ":53", nodeLocalIP + ":53", nodeRemoteIP + ":53"})), ", "),
		"; .rune names answer service VIPs\n",
		"\n  metrics       http://127.0.0.1:9100/metrics\n",
		"\n  ready         http://127.0.0.1:8181/ready\n",
		"\n  ingress       HTTP 127.0.0.1:8088, HTTPS 127.0.0.1:8448\n",
		"\n  forward       kernel: nftables DNAT",
		"\n  cluster CIDR  10.100.0.0/16\n",
		"\n  node subnet   10.89.7.0/24 of container CIDR 10.89.0.0/16; no routes to peers' subnets (--routes=false or dev mode)\n",
	})
	if out := n.cli(t, "get", "nodes"); !regexp.MustCompile(`(?m)^n1\s+-\s+10\.89\.7\.0/24\s`).MatchString(out) {
		t.Errorf("get nodes does not show --node-subnet 10.89.7.0/24 as n1's subnet:\n%s", out)
	}
	vip := n.cast(t, dnsServices)["default/api"]
	if !netip.MustParsePrefix("10.100.0.0/16").Contains(netip.MustParseAddr(vip)) {
		t.Fatalf("VIP %s is not from --cluster-cidr 10.100.0.0/16", vip)
	}
	n.waitAnswer(t, "api.default.rune.", 10*time.Second)
	if code, _ := n.httpGet(t, "http://127.0.0.1:8181/ready"); code != 200 {
		t.Errorf("/ready on --ready-addr: %d, want 200", code)
	}
	if code, body := n.httpGet(t, "http://127.0.0.1:9100/metrics"); code != 200 || !strings.Contains(body, `rune_dns_responses_total{result="answer"}`) {
		t.Errorf("/metrics on --metrics-addr: %d, without rune_dns_responses_total", code)
	}

	// No route is exposed: the edge's own 404 shows the listener is where the flag put it.
	if code, _ := n.httpGet(t, "http://127.0.0.1:8088/"); code != 404 {
		t.Errorf("ingress on --ingress-http 127.0.0.1:8088: %d, want 404", code)
	}

	node, local, remote, allowed := r.clients()
	t.Run("every address serves .rune to everyone", func(t *testing.T) {
		for _, q := range []struct {
			c    client
			addr string
		}{{node, dnsAddr}, {node, bindIP + ":53"}, {local, nodeLocalIP + ":53"}, {remote, nodeRemoteIP + ":53"}, {allowed, nodeRemoteIP + ":53"}} {
			checkServiceA(t, q.c, q.addr, "api.default.rune.", vip)
		}
	})
	t.Run("recursion", func(t *testing.T) {
		checkRecursion(t, node, dnsAddr, true)
		checkRecursion(t, node, bindIP+":53", true)
		checkRecursion(t, local, nodeLocalIP+":53", true)
		checkRecursion(t, remote, nodeRemoteIP+":53", false)
		checkRecursion(t, allowed, nodeRemoteIP+":53", true)
	})

	t.Run("dev mode", func(t *testing.T) {
		d := newNode(t, "rune-e2e-dev")
		d.ns.ResolvConf(t, "127.0.0.1") // nothing there: no query leaves the namespace
		d.ns.Run(t, "ip", "addr", "add", bindIP+"/32", "dev", "lo")
		j := newNode(t, "rune-e2e-join")
		j.ns.ResolvConf(t, "127.0.0.1")
		netnstest.Link(t, d.ns, devClusterIP+"/24", j.ns, joinerClusterIP+"/24")
		d.flags = slices.Clone(devFlags)
		d.flags[slices.Index(d.flags, "DIR")] = d.dataDir
		d.api = []string{"--api", "https://" + flagsAPIAddr, "--token", flagsToken, "--ca", cert}
		d.start(t)
		d.waitSOA(t, 30*time.Second)
		checkStartupBlock(t, d.log.String(), []string{
			"[INFO] runed is running (dev mode) as node ",
			"\n  API           tcp://" + flagsAPIAddr + " (TLS)\n",
			"; .rune names answer 127.0.0.1 for every service (dev mode)\n",
			"\n  ingress       HTTP 127.0.0.1:8080, HTTPS 127.0.0.1:8443\n",
			"\n  forward       proxy, listening on 127.0.0.1:<service port>",
		})
		d.cast(t, dnsServices)
		d.waitAnswer(t, "api.default.rune.", 10*time.Second)
		for _, addr := range []string{dnsAddr, bindIP + ":53"} {
			checkServiceA(t, client{"dev node", d.ns, netip.Addr{}}, addr, "api.default.rune.", "127.0.0.1")
		}
		d.cli(t, "debug", "pause-watch", "1s") // --debug-api
		if _, body := d.httpGet(t, "http://127.0.0.1:9100/metrics"); !strings.Contains(body, "\nrune_raft_leader 1\n") {
			t.Errorf("--cluster-addr --bootstrap: this node is not the Raft leader (rune_raft_leader 1 missing from /metrics)")
		}

		// --join with a token from the dev node: the joiner gets the log
		// and answers the dev node's services with their VIPs. With the
		// token's secret changed runed refuses to start.
		token := strings.TrimSpace(d.cli(t, "cluster", "join-token", "--ttl", "10m"))
		flags := func(dir, token string) []string {
			f := slices.Clone(joinFlags)
			f[slices.Index(f, "DIR")], f[slices.Index(f, "TOKEN")] = dir, token
			return f
		}
		wrong := token[:len(token)-1] + map[bool]string{true: "1", false: "0"}[strings.HasSuffix(token, "0")]
		if out, err := exitOutput(t, j.ns.Command(append([]string{j.runed}, flags(t.TempDir(), wrong)...)...)); err == nil || !strings.Contains(string(out), "join token: wrong secret") {
			t.Errorf("runed --join with a wrong token's secret: %v, want an exit saying \"join token: wrong secret\":\n%s", err, out)
		}
		j.flags = flags(j.dataDir, token)
		j.start(t)
		j.waitAnswer(t, "api.default.rune.", 60*time.Second)
		if nodes := d.cli(t, "get", "nodes"); !strings.Contains(nodes, "\njoiner ") {
			t.Errorf("rune get nodes on the dev node does not list the joiner:\n%s", nodes)
		}
	})
}

// TestDNSWildcardListener runs runed on every address (--dns-addr :53): the
// name server's address is the one a client reached, never the unspecified
// address, and recursion stays closed to clients on none of the host's
// networks — including networks added after start-up, once runed's reload
// check has re-rendered its Corefile.
func TestDNSWildcardListener(t *testing.T) {
	r := newResolverNet(t)
	n := r.node
	n.flags = []string{"--data-dir", n.dataDir, "--dns-addr", ":53", "--dns-allow", allowedIP + "/32", "--stale-budget", "5s"}
	n.start(t)
	n.waitSOA(t, 30*time.Second)
	vip := n.cast(t, dnsServices)["default/api"]
	n.waitAnswer(t, "api.default.rune.", 10*time.Second)
	node, local, remote, allowed := r.clients()

	t.Run("name server address", func(t *testing.T) {
		for _, q := range []struct {
			c          client
			addr, want string
		}{{node, "127.0.0.1:53", "127.0.0.1"}, {local, nodeLocalIP + ":53", nodeLocalIP}, {remote, nodeRemoteIP + ":53", nodeRemoteIP}} {
			for _, proto := range []string{"udp", "tcp"} {
				m := askFrom(t, q.c.ns, q.c.src, q.addr, proto, "rune.", dns.TypeNS)
				var glue []string
				for _, rr := range m.Extra {
					if rr.Header().Rrtype != dns.TypeOPT {
						glue = append(glue, rr.String())
					}
				}
				if want := []string{"ns.dns.rune.\t5\tIN\tA\t" + q.want}; len(m.Answer) != 1 || !slices.Equal(glue, want) {
					t.Errorf("rune. NS from %s via %s over %s: glue %q, want %q", q.c.name, q.addr, proto, glue, want)
				}
				checkServiceA(t, q.c, q.addr, "ns.dns.rune.", q.want)
			}
		}
	})
	t.Run(".rune for everyone, recursion for local clients", func(t *testing.T) {
		checkServiceA(t, local, nodeLocalIP+":53", "api.default.rune.", vip)
		checkServiceA(t, remote, nodeRemoteIP+":53", "api.default.rune.", vip)
		checkRecursion(t, node, "127.0.0.1:53", true)
		checkRecursion(t, local, nodeLocalIP+":53", true)
		checkRecursion(t, remote, nodeRemoteIP+":53", false)
		checkRecursion(t, allowed, nodeRemoteIP+":53", true)
	})
	t.Run("network added after start-up", func(t *testing.T) {
		late := client{"client on a network added later", netnstest.New(t, "rune-e2e-late"), netip.Addr{}}
		netnstest.Link(t, n.ns, "10.0.4.1/24", late.ns, "10.0.4.2/24")
		// The reload directive checks every 30s (plus up to 15s of jitter).
		deadline := time.Now().Add(90 * time.Second)
		for {
			m := askIn(t, late.ns, "10.0.4.1:53", "udp", "www.example.org.", dns.TypeA)
			if m.Rcode == dns.RcodeSuccess {
				break
			}
			if m.Rcode != dns.RcodeRefused || time.Now().After(deadline) {
				t.Fatalf("recursion from the new network within 90s: %v", m)
			}
			time.Sleep(time.Second)
		}
		checkRecursion(t, late, "10.0.4.1:53", true)
		checkRecursion(t, remote, nodeRemoteIP+":53", false)
	})
}

// checkEveryCorefileFlag fails unless args use every flag of runed's that
// renders into the Corefile (all but CoreDNS's own and --print-corefile),
// so a new flag is started from flags here too.
func checkEveryCorefileFlag(t *testing.T, runed string, args []string) {
	t.Helper()
	out, err := exec.Command(runed, "-help").Output()
	if err != nil {
		t.Fatalf("runed -help: %v", err)
	}
	notRendered := []string{"conf", "plugins", "pidfile", "version", "quiet", "log-format", "dns.port", "p", "print-corefile"}
	for _, line := range strings.Split(string(out), "\n") {
		name, ok := strings.CutPrefix(line, "  -")
		if name, _, _ = strings.Cut(name, " "); !ok || slices.Contains(notRendered, name) {
			continue
		}
		if !slices.ContainsFunc(args, func(a string) bool { return a == "--"+name || strings.HasPrefix(a, "--"+name+"=") }) {
			t.Errorf("runed --%s is not among the flags this test starts runed with", name)
		}
	}
}

// checkStartupBlock checks runed's start-up block says each of want, once.
func checkStartupBlock(t *testing.T, log string, want []string) {
	t.Helper()
	for _, w := range want {
		if strings.Count(log, w) != 1 {
			t.Errorf("start-up log does not say %q once:\n%s", w, log)
		}
	}
}

// TestRunedPluginsNamesTheFastPathPlugins: runed -plugins lists CoreDNS's
// plugins and ours, and which plugins a rune block may hold and keep the
// UDP fast path.
func TestRunedPluginsNamesTheFastPathPlugins(t *testing.T) {
	out, err := exec.Command(testkit.Binary(t, "./cmd/runed"), "-plugins").Output()
	if err != nil {
		t.Fatalf("runed -plugins: %v", err)
	}
	lines := strings.Split(string(out), "\n")
	for _, want := range []string{"rune", "runegate", "forward"} {
		if !slices.Contains(lines, want) {
			t.Errorf("runed -plugins lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(string(out), "fast path") || !slices.Contains(lines, "  prometheus, errors, runegate, rune, dataplane, netpolicy, ingress") {
		t.Errorf("runed -plugins does not name the fast path's plugins:\n%s", out)
	}
}
