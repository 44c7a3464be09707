package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
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

// TestPolicyEnforcement runs the data plane with the policy engine (proxy
// and nftables) in the node namespace of the data plane harness, plus a
// second "container" namespace for service other:
//
//	web   10.0.0.2 ── node ── 10.1.1.2 api (backend 0)
//	other 10.2.0.2 ──┘
//
// Container-to-container traffic is routed by the node, so direct access to
// api's container IP crosses the node's forward hook.
func TestPolicyEnforcement(t *testing.T) {
	c := newDPCluster(t, false, 1, "RUNE_DP_POLICY=1")
	other := netnstest.New(t, "dp-other")
	netnstest.Link(t, c.node, "10.2.0.1/24", other, "10.2.0.2/24")
	other.Run(t, "ip", "route", "add", "default", "via", "10.2.0.1")
	c.backends[0].Run(t, "ip", "route", "add", "default", "via", "10.1.1.1")
	c.startBackend(t, 0, 0)
	apiIP := backendAddr(0, 0)

	var vip string
	if err := json.Unmarshal([]byte(c.do(t, nodeCmd{Cast: policyAPI(false) + "---\nservice:\n  name: web\n  ports: [{port: 80}]\n---\nservice:\n  name: other\n  ports: [{port: 80}]\n"})), &vip); err != nil {
		t.Fatal(err)
	}
	c.up(t, apiIP)
	for svc, ip := range map[string]string{"web": "10.0.0.2", "other": "10.2.0.2"} {
		c.do(t, nodeCmd{Register: &cluster.Instance{ID: svc + "-1", Service: svc, Namespace: "default", Node: "n1", IP: netip.MustParseAddr(ip), Ready: true}})
	}
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
	t.Run("UpdateFlipsVerdictWithin100ms", func(t *testing.T) {
		retry, _ := startHelper(t, other, "policy_retry", "RUNE_DP_TARGET="+vip+":80")
		time.Sleep(200 * time.Millisecond)
		allowAt := time.Now()
		c.do(t, nodeCmd{Cast: policyAPI(true)})
		time.Sleep(300 * time.Millisecond)
		denyAt := time.Now()
		c.do(t, nodeCmd{Cast: policyAPI(false)})
		time.Sleep(300 * time.Millisecond)
		retry.stdin.Close()
		var log []attempt
		if err := json.Unmarshal([]byte(retry.next(t, "policy_retry")), &log); err != nil {
			t.Fatal(err)
		}
		allow, err := flipLatency(log, allowAt, denyAt, true)
		if err != nil {
			t.Fatalf("allowing other: %v", err)
		}
		deny, err := flipLatency(log, denyAt, time.Now(), false)
		if err != nil {
			t.Fatalf("denying other again: %v", err)
		}
		t.Logf("policy update → verdict flipped at the client: allow %v, deny %v (%d attempts)", allow, deny, len(log))
		if allow > 100*time.Millisecond || deny > 100*time.Millisecond {
			t.Errorf("verdict flip took %v (allow) and %v (deny), want ≤ 100ms", allow, deny)
		}
	})
	t.Run("OnlyOurTables", func(t *testing.T) {
		want := []string{"table inet rune_policy", "table ip rune", "table ip rune_guard"}
		if got := nftTables(t, c.node); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("nftables tables in the node namespace:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		c.nodeProc.stop()
		if got := nftTables(t, c.node); strings.Join(got, "\n") != "table ip rune_guard" {
			t.Errorf("after shutdown want only the guard table, got:\n%s", strings.Join(got, "\n"))
		}
	})
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

// flipLatency is how long after from the client saw the new verdict (ok or
// not) for good: the end of the first attempt of the run of new verdicts
// that lasts until until. Attempts that ended before from are ignored.
func flipLatency(log []attempt, from, until time.Time, ok bool) (time.Duration, error) {
	first := int64(0)
	n := 0
	for _, a := range log {
		if a.End < from.UnixNano() || a.End > until.UnixNano() {
			continue
		}
		n++
		if a.OK != ok {
			first = 0
			continue
		}
		if first == 0 {
			first = a.End
		}
	}
	if first == 0 {
		return 0, fmt.Errorf("the verdict never settled on ok=%v (%d attempts in the window)", ok, n)
	}
	return time.Duration(first - from.UnixNano()), nil
}
