package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/proxy/netnstest"
)

// policyAPI is default/api (HTTP 80→8080) open to service web only; with
// alsoOther, to service other too.
func policyAPI(alsoOther bool) string {
	peers := "[{service: web}]"
	if alsoOther {
		peers = "[{service: web}, {service: other}]"
	}
	return `service:
  name: api
  namespace: default
  ports:
    - {name: http, port: 80, targetPort: 8080}
  networkPolicy:
    ingress:
      - from: ` + peers + `
        ports: [http]
`
}

// policyCluster is the data plane harness with the policy engine (proxy
// and nftables) in the node namespace, plus a second "container" namespace
// for service other:
//
//	web   10.0.0.2 ── node ── 10.1.1.2 api (backend 0)
//	other 10.2.0.2 ──┘
//
// Container-to-container traffic is routed by the node, so direct access to
// api's container IP crosses the node's forward hook. api is open to web only.
type policyCluster struct {
	*dpCluster
	other      *netnstest.NS
	apiIP, vip string
}

func newPolicyCluster(tb testing.TB) *policyCluster {
	tb.Helper()
	c := newDPCluster(tb, false, 1, "RUNE_DP_POLICY=1")
	other := netnstest.New(tb, "dp-other")
	netnstest.Link(tb, c.node, "10.2.0.1/24", other, "10.2.0.2/24")
	other.Run(tb, "ip", "route", "add", "default", "via", "10.2.0.1")
	c.backends[0].Run(tb, "ip", "route", "add", "default", "via", "10.1.1.1")
	c.startBackend(tb, 0, 0)
	apiIP := backendAddr(0, 0)

	var vip string
	if err := json.Unmarshal([]byte(c.do(tb, nodeCmd{Cast: policyAPI(false) + "---\nservice:\n  name: web\n  ports: [{port: 80}]\n---\nservice:\n  name: other\n  ports: [{port: 80}]\n"})), &vip); err != nil {
		tb.Fatal(err)
	}
	c.up(tb, apiIP)
	for svc, ip := range map[string]string{"web": "10.0.0.2", "other": "10.2.0.2"} {
		c.do(tb, nodeCmd{Register: &cluster.Instance{ID: svc + "-1", Service: svc, Namespace: "default", Node: "n1", IP: netip.MustParseAddr(ip), Ready: true}})
	}
	return &policyCluster{dpCluster: c, other: other, apiIP: apiIP, vip: vip}
}

// TestPolicyEnforcement checks, on a policyCluster, who gets through to api
// by its VIP and by its container IP, the drop counters, a policy update
// taking effect, and that only runed's tables are touched.
func TestPolicyEnforcement(t *testing.T) {
	p := newPolicyCluster(t)
	c, other, apiIP, vip := p.dpCluster, p.other, p.apiIP, p.vip
	vipHTTP := "http://" + vip + ":80/"

	dial := func(ns *netnstest.NS, target string) (outcome string, ms int64) {
		t.Helper()
		var r struct {
			Outcome string
			Ms      int64
		}
		runHelper(t, ns, &r, "policy_dial", "RUNE_DP_TARGET="+target)
		return r.Outcome, r.Ms
	}
	metrics := func() string {
		t.Helper()
		var body string
		runHelper(t, c.node, &body, "policy_get", "RUNE_DP_URL=http://"+policyMetricsAddr+"/metrics")
		return body
	}
	const (
		proxyDrops  = `rune_policy_drops_total{namespace="default",policy="default/api",reason="default-deny",service="api"}`
		kernelDrops = `rune_policy_drops_total{namespace="default",policy="default/api",reason="kernel",service="api"}`
		denied      = `rune_proxy_connections_total{namespace="default",protocol="tcp",result="denied",service="api"}`
	)
	before := metrics()

	t.Run("WebToAPIThroughVIP", func(t *testing.T) {
		r := httpRequests(t, c.client, vipHTTP, 5)
		if len(r.Errors) > 0 || r.Names[apiIP] != 5 {
			t.Fatalf("web → api: %v %q", r.Names, r.Errors)
		}
	})
	t.Run("OtherToAPIThroughVIPReset", func(t *testing.T) {
		r := httpRequests(t, other, vipHTTP, 3)
		if len(r.Errors) != 3 || !strings.Contains(r.Errors[0], "connection reset") || r.MaxErrMs > 1000 {
			t.Fatalf("other → api: want 3 quick resets, got %v %q (slowest %dms)", r.Names, r.Errors, r.MaxErrMs)
		}
	})
	t.Run("DirectToContainerIP", func(t *testing.T) {
		if out, _ := dial(c.client, apiIP+":8080"); out != "ok" {
			t.Errorf("web → api's container IP: %s, want ok (allowed in the kernel too)", out)
		}
		if out, ms := dial(other, apiIP+":8080"); out != "timeout" {
			t.Errorf("other → api's container IP: %s after %dms, want a kernel drop (timeout)", out, ms)
		}
	})
	t.Run("DropCountersMove", func(t *testing.T) {
		var after string
		deadline := time.Now().Add(3 * time.Second)
		for {
			// Kernel counters reach the metric on the engine's next poll.
			after = metrics()
			if metricValue(after, kernelDrops) > metricValue(before, kernelDrops) || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		for _, s := range []struct {
			series string
			min    float64
		}{{proxyDrops, 3}, {denied, 3}, {kernelDrops, 1}} {
			if d := metricValue(after, s.series) - metricValue(before, s.series); d < s.min {
				t.Errorf("%s moved by %v, want at least %v", s.series, d, s.min)
			}
		}
	})
	t.Run("UpdateFlipsVerdict", func(t *testing.T) {
		// Once the node has applied an update, the next connection gets the
		// new verdict (how soon a retrying client sees it is
		// BenchmarkPolicyFlip's).
		c.do(t, nodeCmd{Cast: policyAPI(true)})
		if out, _ := dial(other, vip+":80"); out != "ok" {
			t.Errorf("other → api after the update allowing it: %s, want ok", out)
		}
		c.do(t, nodeCmd{Cast: policyAPI(false)})
		if out, _ := dial(other, vip+":80"); out != "reset" {
			t.Errorf("other → api after the update denying it again: %s, want reset", out)
		}
	})
	t.Run("OnlyOurTables", func(t *testing.T) {
		want := []string{"table inet rune_policy", "table ip rune", "table ip rune_guard"}
		if got := nftTables(t, c.node); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("nftables tables in the node namespace:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		// A stopped runed leaves the guard (VIPs fenced off) and the policy
		// table (its last policy keeps enforcing); the proxy's redirects go.
		c.nodeProc.stop()
		if got := nftTables(t, c.node); strings.Join(got, "\n") != "table inet rune_policy\ntable ip rune_guard" {
			t.Errorf("after shutdown want the policy and guard tables, got:\n%s", strings.Join(got, "\n"))
		}
	})
}

// TestPolicyClosedFromFirstConnection restarts the node over a store that
// already holds api and its policy, with the policy engine starting only
// once the data plane has installed its routes (netpolicy coming up late):
// from the very first connection, other (which no rule allows) is refused,
// and so is web (which the policy allows) until the engine's tables are in;
// then web gets through and other stays out.
func TestPolicyClosedFromFirstConnection(t *testing.T) {
	p := newPolicyCluster(t)
	c, other, apiIP, vip := p.dpCluster, p.other, p.apiIP, p.vip
	vipHTTP := "http://" + vip + ":80/"
	refused := func(ns *netnstest.NS, who string) {
		t.Helper()
		// A reset reads as "connection reset", or as "broken pipe" when it
		// beats the client's request.
		r := httpRequests(t, ns, vipHTTP, 1)
		if len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "connection reset") && !strings.Contains(r.Errors[0], "broken pipe") {
			t.Errorf("%s → api: %v %q, want a reset", who, r.Names, r.Errors)
		}
	}

	if first := c.restartNode(t, "RUNE_DP_POLICY_LATE=1"); first != `"routes"` {
		t.Fatalf("restarted node: %s, want its routes installed before the policy engine", first)
	}
	refused(other, "other, first connection after the restart")
	refused(c.client, "web, before the policy tables")

	fmt.Fprintln(c.nodeProc.stdin, "start the policy engine")
	if r := c.nodeProc.next(t, "node"); r != `"ready"` {
		t.Fatalf("node: %s, want ready", r)
	}
	if r := httpRequests(t, c.client, vipHTTP, 3); len(r.Errors) > 0 || r.Names[apiIP] != 3 {
		t.Errorf("web → api with the tables in: %v %q", r.Names, r.Errors)
	}
	refused(other, "other, with the tables in")
	var body string
	runHelper(t, c.node, &body, "policy_get", "RUNE_DP_URL=http://"+policyMetricsAddr+"/metrics")
	if n := metricValue(body, `rune_policy_drops_total{namespace="default",policy="default/api",reason="not-ready",service="api"}`); n != 2 {
		t.Errorf("not-ready drops of default/api: %v, want 2 (other and web before the tables)", n)
	}
}

// nftTables lists the namespace's nftables tables, sorted.
func nftTables(t *testing.T, ns *netnstest.NS) []string {
	t.Helper()
	var out []string
	for l := range strings.Lines(ns.Run(t, "nft", "list", "tables")) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// BenchmarkPolicyFlip: a policy update while a client in another namespace
// retries through the VIP, until that client sees the new verdict; api's
// ingress alternates between allowing other and not. It reports the median
// and worst flip (bar: 100 ms).
func BenchmarkPolicyFlip(b *testing.B) {
	p := newPolicyCluster(b)
	flip, _ := startHelper(b, p.other, "policy_flip", "RUNE_DP_TARGET="+p.vip+":80")
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		allow := i%2 == 0
		fmt.Fprintf(flip.stdin, "%v\n", allow) // the client retries until it sees allow
		start := time.Now()
		p.do(b, nodeCmd{Cast: policyAPI(allow)})
		var end int64
		if err := json.Unmarshal([]byte(flip.next(b, "policy_flip")), &end); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Unix(0, end).Sub(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
