package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/proxy/netnstest"
)

// dpCluster is a node namespace running the data plane, a "container"
// namespace routed through it, and backend namespaces, each linked to the
// node by a veth pair:
//
//	client 10.0.0.2 ── 10.0.0.1 node 10.1.i.1 ── 10.1.i.2 (and .3) backend i
type dpCluster struct {
	node, client *netnstest.NS
	backends     []*netnstest.NS
	nodeProc     *helper
	nodeEnv      []string // the node helper's, data directory included
}

// kernelStaleBudget is the node's stale budget with kernel forwarding.
const kernelStaleBudget = 3 * time.Second

// nodeEnv is added to the node helper's environment.
func newDPCluster(t testing.TB, dev bool, nBackends int, nodeEnv ...string) *dpCluster {
	t.Helper()
	netnstest.RequireRoot(t)
	c := &dpCluster{node: netnstest.New(t, "dp-node"), client: netnstest.New(t, "dp-ctr")}
	netnstest.Link(t, c.node, "10.0.0.1/24", c.client, "10.0.0.2/24")
	c.client.Run(t, "ip", "route", "add", "default", "via", "10.0.0.1")
	// The node routes between its containers (kernel forwarding and direct
	// container-IP traffic need it; runed refuses kernel forwarding without).
	c.node.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	for i := 1; i <= nBackends; i++ {
		b := netnstest.New(t, "dp-be")
		_, bIf := netnstest.Link(t, c.node, fmt.Sprintf("10.1.%d.1/24", i), b, fmt.Sprintf("10.1.%d.2/24", i))
		b.Run(t, "ip", "addr", "add", fmt.Sprintf("10.1.%d.3/24", i), "dev", bIf)
		c.backends = append(c.backends, b)
	}
	env := append([]string{"RUNE_DP_DIR=" + t.TempDir()}, nodeEnv...)
	if dev {
		env = append(env, "RUNE_DP_DEV=1")
	}
	c.nodeEnv = env
	c.nodeProc, _ = startHelper(t, c.node, "node", env...)
	return c
}

// restartNode stops the node helper and starts it again over the same
// store, with env added: what a restart of runed with the services already
// in the store does. It returns the new helper's first result.
func (c *dpCluster) restartNode(t *testing.T, env ...string) string {
	t.Helper()
	c.nodeProc.stop()
	var first string
	c.nodeProc, first = startHelper(t, c.node, "node", append(slices.Clip(c.nodeEnv), env...)...)
	return first
}

// backendAddr is backend i's address of generation gen (0 or 1).
func backendAddr(i, gen int) string { return fmt.Sprintf("10.1.%d.%d", i+1, 2+gen) }

func (c *dpCluster) startBackend(t testing.TB, i, gen int) *helper {
	t.Helper()
	h, _ := startHelper(t, c.backends[i], "backend", "RUNE_DP_ADDR="+backendAddr(i, gen), "RUNE_DP_NAME="+backendAddr(i, gen))
	return h
}

// do runs one controller command on the node and waits until the data
// plane has applied it; it returns the node's answer.
func (c *dpCluster) do(t testing.TB, cmd nodeCmd) string {
	t.Helper()
	b, _ := json.Marshal(cmd)
	if _, err := fmt.Fprintf(c.nodeProc.stdin, "%s\n", b); err != nil {
		t.Fatal(err)
	}
	return c.nodeProc.next(t, "node")
}

// castAPI casts service default/api (HTTP 80→8080, UDP 9053) and returns
// its VIP.
func (c *dpCluster) castAPI(t *testing.T) string {
	t.Helper()
	var vip string
	ans := c.do(t, nodeCmd{Cast: `service:
  name: api
  namespace: default
  ports:
    - {name: http, port: 80, targetPort: 8080}
    - {name: dns, port: 9053, protocol: udp}
`})
	if err := json.Unmarshal([]byte(ans), &vip); err != nil {
		t.Fatalf("cast answer %q: %v", ans, err)
	}
	return vip
}

// up registers a ready instance of api at addr (its id is the address).
func (c *dpCluster) up(t testing.TB, addr string) {
	t.Helper()
	c.do(t, nodeCmd{Register: &cluster.Instance{ID: addr, Service: "api", Namespace: "default", Node: "n1", IP: netip.MustParseAddr(addr), Ready: true}})
}

func (c *dpCluster) down(t *testing.T, addr string) {
	t.Helper()
	c.do(t, nodeCmd{Deregister: addr})
}

func httpRequests(t testing.TB, ns *netnstest.NS, url string, n int) requests {
	t.Helper()
	var r requests
	runHelper(t, ns, &r, "http", "RUNE_DP_URL="+url, fmt.Sprint("RUNE_DP_COUNT=", n))
	return r
}

func TestDataplaneInterception(t *testing.T) { testInterception(t) }

// TestDataplaneKernelForwarding runs the same checks with TCP forwarded by
// the kernel (nftables DNAT) instead of the proxy, then the one behaviour of
// its own: forwarding outlives runed only until the stale budget runs out.
func TestDataplaneKernelForwarding(t *testing.T) { testInterception(t, "RUNE_DP_KERNEL=1") }

func testInterception(t *testing.T, nodeEnv ...string) {
	kernel := len(nodeEnv) > 0
	c := newDPCluster(t, false, 3, nodeEnv...)
	var all []string
	var gen0 []*helper
	for i := range 3 {
		gen0 = append(gen0, c.startBackend(t, i, 0))
		all = append(all, backendAddr(i, 0))
	}
	vip := c.castAPI(t)
	vipHTTP, vipUDP := "http://"+vip+":80/", vip+":9053"
	for _, a := range all {
		c.up(t, a)
	}

	t.Run("TCPBalancesAcrossThreeBackends", func(t *testing.T) {
		r := httpRequests(t, c.client, vipHTTP, 90)
		if len(r.Errors) > 0 {
			t.Fatalf("errors: %q", r.Errors)
		}
		for _, a := range all {
			if r.Names[a] < 10 {
				t.Errorf("backend %s got %d of 90 requests: %v", a, r.Names[a], r.Names)
			}
		}
	})
	t.Run("UDP", func(t *testing.T) {
		var r requests
		runHelper(t, c.client, &r, "udp", "RUNE_DP_TARGET="+vipUDP, "RUNE_DP_COUNT=30")
		if len(r.Errors) > 0 {
			t.Fatalf("errors: %q", r.Errors)
		}
		if len(r.Names) < 2 {
			t.Errorf("UDP flows all went to %v", r.Names)
		}
	})
	t.Run("HostOriginated", func(t *testing.T) {
		r := httpRequests(t, c.node, vipHTTP, 10)
		if len(r.Errors) > 0 {
			t.Fatalf("from the node itself (no default route): %q", r.Errors)
		}
		var u requests
		runHelper(t, c.node, &u, "udp", "RUNE_DP_TARGET="+vipUDP, "RUNE_DP_COUNT=5")
		if len(u.Errors) > 0 {
			t.Fatalf("UDP from the node itself: %q", u.Errors)
		}
	})
	t.Run("VIPNotPingable", func(t *testing.T) {
		for _, ns := range []*netnstest.NS{c.client, c.node} {
			var got string
			runHelper(t, ns, &got, "ping", "RUNE_DP_TARGET="+vip)
			if got == "reply" {
				t.Errorf("VIP answered ping from %s", ns.Name)
			}
		}
	})
	t.Run("UnknownVIPRefused", func(t *testing.T) {
		r := httpRequests(t, c.client, "http://10.96.0.99:80/", 1)
		if len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "connection refused") || r.MaxErrMs > 1000 {
			t.Errorf("want a quick refusal, got %q after %dms", r.Errors, r.MaxErrMs)
		}
	})
	t.Run("ScaleToZeroRefusedQuickly", func(t *testing.T) {
		for _, a := range all {
			c.down(t, a)
		}
		r := httpRequests(t, c.client, vipHTTP, 3)
		if len(r.Errors) != 3 || !strings.Contains(r.Errors[0], "connection refused") || r.MaxErrMs > 1000 {
			t.Errorf("want quick refusals, got %q (slowest %dms), answers %v", r.Errors, r.MaxErrMs, r.Names)
		}
	})
	t.Run("AddedEndpointUsedByNextConnection", func(t *testing.T) {
		c.up(t, all[1])
		r := httpRequests(t, c.client, vipHTTP, 1)
		if r.Names[all[1]] != 1 {
			t.Errorf("want the new endpoint %s, got %v %q", all[1], r.Names, r.Errors)
		}
	})
	t.Run("RollingReplacementUnderLoad", func(t *testing.T) {
		c.up(t, all[0])
		c.up(t, all[2])
		load, _ := startHelper(t, c.client, "load", "RUNE_DP_URL="+vipHTTP)
		// settle waits until every load worker has finished two more
		// requests: then none is still in a request begun before.
		settle := func() {
			t.Helper()
			progress := func() []int64 {
				fmt.Fprintln(load.stdin, "progress")
				var p []int64
				if err := json.Unmarshal([]byte(load.next(t, "load")), &p); err != nil {
					t.Fatal(err)
				}
				return p
			}
			base := progress()
			deadline := time.Now().Add(30 * time.Second)
			for p := progress(); ; p = progress() {
				behind := false
				for w := range base {
					behind = behind || p[w] < base[w]+2
				}
				if !behind {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("the load stalled: requests finished per worker %v, 30s after %v", p, base)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		settle()
		for i := range 3 {
			c.startBackend(t, i, 1)
			c.up(t, backendAddr(i, 1))
			c.down(t, all[i])
			// Once the change is applied no new connection goes to the old
			// instance, but one dialled a moment before may still sit in
			// its accept queue, which closing the listener would reset. So,
			// like any orchestrator, wait until requests begun before the
			// change have finished before stopping it; it then drains,
			// finishing in-flight requests.
			settle()
			gen0[i].stop()
			settle()
		}
		load.stdin.Close()
		var res struct {
			OK, Failed int
			Errors     []string
		}
		if err := json.Unmarshal([]byte(load.next(t, "load")), &res); err != nil {
			t.Fatal(err)
		}
		t.Logf("rolling replacement: %d requests ok, %d failed", res.OK, res.Failed)
		if res.Failed != 0 || res.OK == 0 {
			t.Errorf("%d failed requests (%q), %d ok", res.Failed, res.Errors, res.OK)
		}
	})
	if kernel {
		t.Run("TCPIsDNATedNotProxied", func(t *testing.T) {
			rules := c.node.Run(t, "nft", "list", "table", "ip", "rune")
			for _, want := range []string{"map svc_tcp_ep_3 {", "dnat ip to ip daddr . th dport . numgen random mod 3 map @svc_tcp_ep_3", vip + " . 80 . 0x00000002 : 10.1.", "jump kernel", "masquerade"} {
				if !strings.Contains(rules, want) {
					t.Errorf("table ip rune lacks %q:\n%s", want, rules)
				}
			}
		})
		t.Run("ForwardingLapsesWithTheStaleBudget", func(t *testing.T) {
			// runed dies without cleaning up: new connections keep going
			// until the budget is spent, then the guard refuses. (The
			// replacement backends ended with the subtest above.)
			for i := range 3 {
				c.startBackend(t, i, 1)
			}
			c.nodeProc.kill()
			killed := time.Now()
			if r := httpRequests(t, c.client, vipHTTP, 3); len(r.Errors) > 0 {
				t.Errorf("right after runed died: %q", r.Errors)
			}
			if time.Since(killed) > kernelStaleBudget/2 {
				t.Fatalf("the requests took %v, too long to tell forwarding outlived runed", time.Since(killed))
			}
			// Then, once the budget has run out, the guard refuses.
			deadline := killed.Add(kernelStaleBudget + 30*time.Second)
			for {
				r := httpRequests(t, c.client, vipHTTP, 1)
				if len(r.Errors) == 1 && strings.Contains(r.Errors[0], "connection refused") {
					if r.MaxErrMs > 1000 {
						t.Errorf("past the stale budget want a quick refusal, got one after %dms", r.MaxErrMs)
					}
					t.Logf("forwarding lapsed %s after runed died (budget %s)", time.Since(killed).Round(time.Millisecond), kernelStaleBudget)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s after runed died (budget %s) want a refusal, got %q (answers %v)", time.Since(killed).Round(time.Millisecond), kernelStaleBudget, r.Errors, r.Names)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
		return
	}
	t.Run("CleanShutdownLeavesOnlyTheGuard", func(t *testing.T) {
		c.nodeProc.stop()
		tables := c.node.Run(t, "nft", "list", "tables")
		if strings.TrimSpace(tables) != "table ip rune_guard" {
			t.Errorf("after shutdown want only the guard table, got:\n%s", tables)
		}
		// With runed down the CIDR is still fenced: refused, not leaked or hung.
		r := httpRequests(t, c.client, vipHTTP, 1)
		if len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "connection refused") || r.MaxErrMs > 1000 {
			t.Errorf("while runed is down want a quick refusal, got %q after %dms", r.Errors, r.MaxErrMs)
		}
	})
}

func TestDataplaneDevMode(t *testing.T) {
	c := newDPCluster(t, true, 1)
	c.startBackend(t, 0, 0)
	c.castAPI(t)
	c.up(t, backendAddr(0, 0))
	r := httpRequests(t, c.node, "http://127.0.0.1:80/", 3)
	if len(r.Errors) > 0 || r.Names[backendAddr(0, 0)] != 3 {
		t.Errorf("through 127.0.0.1:80: %v %q", r.Names, r.Errors)
	}
	var u requests
	runHelper(t, c.node, &u, "udp", "RUNE_DP_TARGET=127.0.0.1:9053", "RUNE_DP_COUNT=3")
	if len(u.Errors) > 0 {
		t.Errorf("UDP through 127.0.0.1:9053: %q", u.Errors)
	}
	if rules := c.node.Run(t, "nft", "list", "ruleset"); strings.TrimSpace(rules) != "" {
		t.Errorf("dev mode programmed nftables:\n%s", rules)
	}
}
