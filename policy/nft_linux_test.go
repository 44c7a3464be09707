package policy

import (
	"context"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/proxy/netnstest"
)

// listen echoes connections on addr inside ns until the test ends (a
// connect-and-close test sees an accept; a test that keeps a connection
// open sees its bytes come back while the flow is allowed).
func listen(t testing.TB, ns *netnstest.NS, addr string) {
	t.Helper()
	var ln net.Listener
	var err error
	ns.Do(t, func() { ln, err = net.Listen("tcp", addr) })
	if err != nil {
		t.Fatal(err)
	}
	testkit.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		io.Copy(c, c)
	})
}

// connects reports whether a TCP connect from ns to addr completes within
// timeout; a policy drop shows as a timeout.
func connects(t testing.TB, ns *netnstest.NS, addr string, timeout time.Duration) bool {
	t.Helper()
	var c net.Conn
	var err error
	ns.Do(t, func() { c, err = net.DialTimeout("tcp", addr, timeout) })
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// policyNet is three "container" namespaces routed through a "node"
// namespace, where the policy chains are installed.
type policyNet struct {
	node, web, api, other *netnstest.NS
}

func newPolicyNet(t testing.TB) *policyNet {
	netnstest.RequireRoot(t)
	p := &policyNet{
		node: netnstest.New(t, "pol-node"), web: netnstest.New(t, "pol-web"),
		api: netnstest.New(t, "pol-api"), other: netnstest.New(t, "pol-other"),
	}
	p.node.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	for i, leaf := range []*netnstest.NS{p.web, p.api, p.other} {
		subnet := "172.30." + string(rune('1'+i)) + "."
		netnstest.Link(t, p.node, subnet+"1/24", leaf, subnet+"2/24")
		leaf.Run(t, "ip", "route", "add", "default", "via", subnet+"1")
	}
	return p
}

const (
	nsWebIP, nsAPIIP, nsOtherIP = "172.30.1.2", "172.30.2.2", "172.30.3.2"
	// settle is how long a connect may take before it counts as dropped;
	// inside namespaces an allowed one takes well under a millisecond.
	settle = 300 * time.Millisecond
	// allowed bounds a connect that must succeed: generous, because on a
	// loaded machine a SYN-ACK can take longer than settle, and waiting
	// costs nothing when it arrives.
	allowed = 5 * time.Second
)

func nsAPIDoc(from string) string {
	return `
service:
  name: api
  ports: [{name: http, port: 80, targetPort: 8080}]
  networkPolicy:
    ingress:
      - from: [{service: ` + from + `}]
        ports: [http]
`
}

// startNFTPolicy is the policy net with api (open to web only), web and
// other (egress to api only) cast and their instances registered, and an
// Engine installing the chains in the node namespace (not yet running).
func startNFTPolicy(tb testing.TB) (*policyNet, *testCluster, *Engine) {
	return startNFTPolicyOn(tb, localNode)
}

// startNFTPolicyOn is startNFTPolicy with web's and other's instances
// registered on clientNode: another node's, when it is not localNode, whose
// packets reach the node namespace forwarded with their own addresses, as
// routed traffic from another node does (no SNAT inside the cluster).
func startNFTPolicyOn(tb testing.TB, clientNode string) (*policyNet, *testCluster, *Engine) {
	tb.Helper()
	pn := newPolicyNet(tb)
	listen(tb, pn.api, nsAPIIP+":8080")
	listen(tb, pn.web, nsWebIP+":8080")

	c := newTestCluster(tb, cluster.ViewOptions{})
	c.Cast(tb, nsAPIDoc("web"), webDoc, `
service:
  name: other
  ports: [{name: http, port: 80}]
  networkPolicy:
    egress:
      - to: [{service: api}]
`)
	c.instance(tb, "web-1", "default", "web", clientNode, nsWebIP)
	c.instance(tb, "api-1", "default", "api", localNode, nsAPIIP)
	c.instance(tb, "other-1", "default", "other", clientNode, nsOtherIP)

	k, err := NewNFT(NFTConfig{NetNS: pn.node.FD})
	if err != nil {
		tb.Fatal(err)
	}
	return pn, c, NewEngine(c.View, localNode, EngineOptions{Kernel: k, Poll: 20 * time.Millisecond})
}

// retryConnect connects from ns to addr again and again until one gets
// through or the deadline passes. Each try waits 5 ms: a retrying client's
// SYNs are a few ms apart, where a dropped SYN would otherwise wait out the
// kernel's 1 s retransmission.
func retryConnect(tb testing.TB, ns *netnstest.NS, addr string, deadline time.Time) bool {
	tb.Helper()
	for time.Now().Before(deadline) {
		if connects(tb, ns, addr, 5*time.Millisecond) {
			return true
		}
	}
	return false
}

// TestNFTEnforcesPolicy installs the policy chains in a node namespace and
// checks real connections between container namespaces: allowed, dropped
// (ingress and egress), counted, switched by a policy update, and removed
// on shutdown, touching no table but ours.
func TestNFTEnforcesPolicy(t *testing.T) {
	pn, c, e := startNFTPolicy(t)
	runEngine(t, e)
	waitFor(t, "the policy chains to be installed", e.Ready)

	if !connects(t, pn.web, nsAPIIP+":8080", allowed) {
		t.Error("web → api:8080 dropped; the policy allows it")
	}
	kernelDrops := func(svc string) float64 {
		return testutil.ToFloat64(drops.WithLabelValues(svc, "default", "default/"+svc, ReasonKernel))
	}
	apiBefore, otherBefore := kernelDrops("api"), kernelDrops("other")
	if connects(t, pn.other, nsAPIIP+":8080", settle) {
		t.Error("other → api:8080 connected; api's ingress policy allows only web")
	}
	if connects(t, pn.other, nsWebIP+":8080", settle) {
		t.Error("other → web:8080 connected; other's egress policy allows only api")
	}
	if !connects(t, pn.web, nsWebIP+":8080", allowed) || !connects(t, pn.api, nsWebIP+":8080", allowed) {
		t.Error("traffic to web, which has no ingress policy, was dropped")
	}
	waitFor(t, "kernel drop counters to reach rune_policy_drops_total", func() bool {
		return kernelDrops("api") > apiBefore && kernelDrops("other") > otherBefore
	})

	ruleset := pn.node.Run(t, "nft", "list", "ruleset")
	for _, line := range strings.Split(ruleset, "\n") {
		if strings.HasPrefix(line, "table ") && line != "table inet rune_policy {" {
			t.Errorf("foreign table in the node's ruleset: %q", line)
		}
	}
	if !strings.Contains(ruleset, "table inet rune_policy {") {
		t.Errorf("our table is missing:\n%s", ruleset)
	}

	// Flip the policy while other keeps retrying: it gets through, and web
	// no longer does (how soon is BenchmarkNFTPolicyFlip's).
	c.Cast(t, nsAPIDoc("other"))
	if !retryConnect(t, pn.other, nsAPIIP+":8080", time.Now().Add(allowed)) {
		t.Fatalf("other → api still dropped %v after the policy update", allowed)
	}
	if connects(t, pn.web, nsAPIIP+":8080", settle) {
		t.Error("web → api:8080 still connects after the policy stopped allowing it")
	}
}

// TestNFTInstallsLargePlan: every element of a 10,000-CIDR policy reaches
// the kernel (element lists past netlink's 64 KiB attribute limit once
// made the whole batch fail).
func TestNFTInstallsLargePlan(t *testing.T) {
	netnstest.RequireRoot(t)
	tables := largePlanTables(10000)
	ns := netnstest.New(t, "pol-large")
	k, err := NewNFT(NFTConfig{NetNS: ns.FD})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if err := k.Sync(tables, false); err != nil {
		t.Fatal(err)
	}
	set, err := k.conn.GetSetByName(k.table, "allow/ingress/default/big")
	if err != nil {
		t.Fatal(err)
	}
	elems, err := k.conn.GetSetElements(set)
	if err != nil {
		t.Fatal(err)
	}
	if len(elems) != 10000 {
		t.Errorf("kernel holds %d elements, want 10000", len(elems))
	}
}

// largePlanTables is one local service whose ingress allows n disjoint
// CIDRs (every other /24, so none merge) on one port: n kernel elements.
func largePlanTables(n int) *Tables {
	big := cluster.NamespacedName{Namespace: "default", Name: "big"}
	f := &fakeState{
		services: []cluster.ServiceRecord{{Spec: cluster.Service{Name: big.Name, Namespace: big.Namespace,
			Ports: []cluster.Port{{Name: "http", Port: 80, TargetPort: 8080, Protocol: cluster.TCP}}}}},
		instances: []cluster.Instance{{ID: "1", Service: big.Name, Namespace: big.Namespace, Node: localNode, IP: netip.MustParseAddr("172.17.0.1")}},
	}
	rule := cluster.PolicyRule{Ports: []cluster.PortRef{{Name: "http"}}}
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 7), byte(2 * i), 0})
		rule.From = append(rule.From, cluster.Peer{CIDR: netip.PrefixFrom(a, 24).String()})
	}
	f.policies = map[cluster.NamespacedName]cluster.NetworkPolicy{big: {HasIngress: true, Ingress: []cluster.PolicyRule{rule}}}
	return compile(f, 1, localNode, nil)
}

// BenchmarkNFTInstall times one Sync of 10,000 CIDR peers into a test
// namespace: a full, atomic table replace.
func BenchmarkNFTInstall(b *testing.B) {
	netnstest.RequireRoot(b)
	tables := largePlanTables(10000)
	ns := netnstest.New(b, "pol-bench")
	k, err := NewNFT(NFTConfig{NetNS: ns.FD})
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	for b.Loop() {
		if err := k.Sync(tables, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNFTPolicyFlip: a policy update cast through the controller until
// the kernel lets the newly allowed client through, with that client
// retrying all along; api's ingress alternates between other and web. It
// reports the median and worst flip (bar: 100 ms).
func BenchmarkNFTPolicyFlip(b *testing.B) {
	pn, c, e := startNFTPolicy(b)
	runEngine(b, e)
	waitFor(b, "the policy chains to be installed", e.Ready)
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		from, client := "other", pn.other
		if i%2 == 1 {
			from, client = "web", pn.web
		}
		start := time.Now()
		c.Cast(b, nsAPIDoc(from))
		if !retryConnect(b, client, nsAPIIP+":8080", start.Add(allowed)) {
			b.Fatalf("update %d: %s → api still dropped %v after the update", i, from, allowed)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// pollSignal is the real nftables enforcer, telling the test each time the
// engine polls its drop counters: by then the engine has been through its
// loop once (compiled, and installed if it was going to). It counts installs.
type pollSignal struct {
	*NFT
	polled chan struct{}
	syncs  atomic.Int64
}

// installed waits until e, running on k, has installed tables of seq or
// newer: one poll after its tables reached seq, its loop has been past the
// install.
func (k *pollSignal) installed(t testing.TB, e *Engine, seq uint64) {
	t.Helper()
	waitFor(t, "the engine to compile the write", func() bool { return e.Tables().Seq >= seq })
	<-k.polled
}

func (k *pollSignal) Sync(t *Tables, stale bool) error {
	k.syncs.Add(1)
	return k.NFT.Sync(t, stale)
}

func (k *pollSignal) Drops() ([]KernelDrop, error) {
	select {
	case k.polled <- struct{}{}:
	default:
	}
	return k.NFT.Drops()
}

// TestNFTKeepsLeftoverUntilLoaded: a policy table left by a runed that did
// not shut down cleanly keeps enforcing while the next runed's View loads;
// the engine does not replace it with the allow-all plan of an empty View.
func TestNFTKeepsLeftoverUntilLoaded(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t, "pol-left")
	c := newTestCluster(t, cluster.ViewOptions{})
	c.Cast(t, nsAPIDoc("web"), webDoc)
	c.instance(t, "api-1", "default", "api", localNode, nsAPIIP)
	const chain = "chain ingress/default/api"
	leftover, err := NewNFT(NFTConfig{NetNS: ns.FD})
	if err != nil {
		t.Fatal(err)
	}
	if err := leftover.Sync(Compile(c.View.Snapshot(), localNode), false); err != nil {
		t.Fatal(err)
	}
	table := func() string { return ns.Run(t, "nft", "list", "table", "inet", "rune_policy") }
	if !strings.Contains(table(), chain) {
		t.Fatalf("the leftover table has no %q:\n%s", chain, table())
	}

	view := cluster.NewView(c.Log, cluster.ViewOptions{}) // not loaded until it runs
	nft, err := NewNFT(NFTConfig{NetNS: ns.FD})
	if err != nil {
		t.Fatal(err)
	}
	k := &pollSignal{NFT: nft, polled: make(chan struct{})}
	e := NewEngine(view, localNode, EngineOptions{Kernel: k, Poll: 10 * time.Millisecond})
	runEngine(t, e)
	<-k.polled
	if got := table(); !strings.Contains(got, chain) {
		t.Fatalf("before the View loaded, the engine replaced the leftover table:\n%s", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); view.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the engine to install the loaded View's policy", e.Ready)
	if got := table(); !strings.Contains(got, chain) {
		t.Errorf("after the View loaded, api's chain is missing:\n%s", got)
	}
}

// TestNFTEnforcesAfterTheEngineStops: a runed that stops leaves its policy
// table enforcing — other (which api's policy does not allow) stays dropped
// and web still gets through — rather than opening api's container IP
// until the next runed has loaded its View.
func TestNFTEnforcesAfterTheEngineStops(t *testing.T) {
	netnstest.RequireRoot(t)
	pn, _, e := startNFTPolicy(t)
	stop := runEngine(t, e)
	waitFor(t, "the policy chains to be installed", e.Ready)
	stop()
	if !strings.Contains(pn.node.Run(t, "nft", "list", "table", "inet", "rune_policy"), "chain ingress/default/api") {
		t.Fatal("the policy table left with the engine")
	}
	if connects(t, pn.other, nsAPIIP+":8080", settle) {
		t.Error("other → api:8080 got through after the engine stopped; api's policy allows only web")
	}
	if !connects(t, pn.web, nsAPIIP+":8080", allowed) {
		t.Error("web → api:8080 dropped after the engine stopped; the policy allows it")
	}
}

// TestNFTKeepsThePlanForUnrelatedWrites: a write that changes no service,
// instance or policy (a certificate here; leases and node heartbeats alike)
// does not reinstall the kernel table; a policy change still does.
func TestNFTKeepsThePlanForUnrelatedWrites(t *testing.T) {
	_, c, e := startNFTPolicy(t)
	k := &pollSignal{NFT: e.opts.Kernel.(*NFT), polled: make(chan struct{})}
	e.opts.Kernel = k
	runEngine(t, e)
	waitFor(t, "the policy chains to be installed", e.Ready)
	settled := func(seq uint64) { k.installed(t, e, seq) }
	settled(c.View.Snapshot().Seq)
	before := k.syncs.Load()
	seq, err := c.Log.Propose(context.Background(), []orderedlog.Op{orderedlog.Put(orderedlog.PrefixCerts+"example.com", []byte("pem"))})
	if err != nil {
		t.Fatal(err)
	}
	settled(seq)
	if got := k.syncs.Load(); got != before {
		t.Errorf("a certificate write reinstalled the policy table (%d installs, want %d)", got, before)
	}
	settled(c.RegisterNode(t, remoteNode, netip.MustParseAddr("192.168.50.2"))) // a new peer: installed
	before = k.syncs.Load()
	beat, err := c.Ctl.Heartbeat(context.Background(), remoteNode)
	if err != nil {
		t.Fatal(err)
	}
	settled(beat)
	if got := k.syncs.Load(); got != before {
		t.Errorf("a peer's heartbeat reinstalled the policy table (%d installs, want %d)", got, before)
	}
	settled(c.Cast(t, nsAPIDoc("other")))
	if k.syncs.Load() == before {
		t.Error("a policy change did not reinstall the policy table")
	}
}
