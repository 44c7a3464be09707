package e2ecluster

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
)

// apiService is default/api, 80→8080, open to service web only when
// policed.
func apiService(policed bool) string {
	doc := "service:\n  name: api\n  namespace: default\n  ports:\n    - {name: http, port: 80, targetPort: 8080}\n"
	if policed {
		doc += "  networkPolicy:\n    ingress:\n      - from: [{service: web}]\n        ports: [http]\n"
	}
	return doc
}

func clientService(name string) string {
	return "service:\n  name: " + name + "\n  namespace: default\n  ports:\n    - {name: http, port: 80, targetPort: 8080}\n"
}

// nodeGrace is every node's --node-grace: how long after node 1's death the
// leader marks its instances unready.
const nodeGrace = 3 * time.Second

// Issue 16's acceptance for endpoints on any node and identity across
// nodes: three nodes, each with a container subnet (runed routes the
// peers' subnets) and containers on it,
//
//	n1 10.77.0.1: api-1 10.88.1.10
//	n2 10.77.0.2: web 10.88.2.10, other 10.88.2.11   (clients)
//	n3 10.77.0.3: api-3 10.88.3.10                   (registered last)
//
// web reaches api-1 through the VIP with n2 in proxy mode (api-1 sees n2's
// address) and in kernel mode (api-1 sees web's own); with api's policy
// open to web only, other is refused through the VIP by n2's proxy and
// dropped by n1's kernel when it connects to api-1 directly, web's direct
// connection passes, and each drop counts on the node that decided. Then n1
// is SIGKILLed: api-1 leaves the endpoints on n2 and n3 after the grace,
// and every request from web is served by api-3.
func TestCrossNodeDataPath(t *testing.T) {
	nt := NewNet(t, 3)
	mode := map[string]string{"n1": "proxy", "n2": "proxy", "n3": "proxy"}
	nt.Flags = func(n *Node) []string {
		return []string{"--node-subnet", n.Subnet().String(), "--node-grace", nodeGrace.String(), "--forward", mode[n.Name]}
	}
	n1, n2, n3 := nt.Nodes[0], nt.Nodes[1], nt.Nodes[2]
	api1, web, other, api3 := n1.AddContainer(t, "api-1", 10), n2.AddContainer(t, "web", 10), n2.AddContainer(t, "other", 11), n3.AddContainer(t, "api-3", 10)
	api1.Serve(t, 8080)
	api3.Serve(t, 8080)
	nt.Form(t)

	n2.Cast(t, apiService(false))
	n2.Cast(t, clientService("web"))
	n2.Cast(t, clientService("other"))
	api1.Register(t, "api")
	web.Register(t, "web")
	other.Register(t, "other")
	vip := netip.AddrPortFrom(serviceVIP(t, n2, "api"), 80)
	direct := netip.AddrPortFrom(api1.Addr, 8080)

	// Routed: web's own address. Proxy mode: n2's proxy connects from n2's.
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(n2.NS.Run(t, "ip", "route"), n1.NS.Run(t, "ip", "route"), n1.NS.Run(t, "nft", "list", "ruleset"), n2.NS.Run(t, "nft", "list", "ruleset"))
		}
	})
	expectSeen(t, web, direct, "api-1", web.Addr.String())
	expectSeen(t, web, vip, "api-1", n2.Addr.String())

	// api open to web only.
	n2.Cast(t, apiService(true))
	proxyDrops, kernelDrops := n2.Metric(t, "rune_policy_drops_total", `service="api"`), n1.Metric(t, "rune_policy_drops_total", `service="api"`, `reason="kernel"`)
	n1ProxyDrops := n1.Metric(t, "rune_policy_drops_total", `service="api"`, `reason="default-deny"`)
	expectRefused(t, other, vip)
	expectRefused(t, other, direct)
	expectSeen(t, web, vip, "api-1", n2.Addr.String())
	expectSeen(t, web, direct, "api-1", web.Addr.String())
	waitMetric(t, n2, "rune_policy_drops_total", proxyDrops, `service="api"`)
	waitMetric(t, n1, "rune_policy_drops_total", kernelDrops, `service="api"`, `reason="kernel"`)
	if now := n1.Metric(t, "rune_policy_drops_total", `service="api"`, `reason="default-deny"`); now != n1ProxyDrops {
		t.Errorf("n1's proxy counted %v refusals of api (was %v); the refusals through the VIP were n2's", now, n1ProxyDrops)
	}

	// Kernel mode on n2 (api unpoliced, so the kernel forwards it): no
	// SNAT inside the cluster, api-1 sees web itself.
	n2.Cast(t, apiService(false))
	mode["n2"] = "kernel"
	n2.Stop(t)
	n2.Restart(t)
	expectSeen(t, web, vip, "api-1", web.Addr.String())

	// n1 dies; api-3 on n3 takes over.
	api3.Register(t, "api")
	waitEndpoints(t, []*Node{n2, n3}, "api-1", "api-3")
	n1.Kill(t)
	seq := waitEndpoints(t, []*Node{n2, n3}, "api-3")
	waitApplied(t, n2, seq)
	for i := range 50 {
		server, seen, err := web.Call(t, vip, 2*time.Second)
		if err != nil || server != "api-3" || seen != web.Addr.String() {
			t.Fatalf("request %d after api-1 left the endpoints: served by %q seeing %q, err %v; want api-3 seeing %s", i, server, seen, err, web.Addr)
		}
	}
}

func serviceVIP(t testing.TB, n *Node, name string) netip.Addr {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := n.API.Services(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range l.Items {
		if s.Spec.Name == name {
			return s.VIP
		}
	}
	t.Fatalf("%s: no service %s", n.Name, name)
	return netip.Addr{}
}

// expectSeen waits until c's connection to to is served by server, which
// sees the source seen (the data plane and policy follow the log within
// moments), then requires it three times more.
func expectSeen(t *testing.T, c *Container, to netip.AddrPort, server, seen string) {
	t.Helper()
	var gotServer, gotSeen string
	var err error
	if !waitUntil(20*time.Second, func() bool {
		gotServer, gotSeen, err = c.Call(t, to, time.Second)
		return err == nil && gotServer == server && gotSeen == seen
	}) {
		t.Fatalf("%s → %s: served by %q seeing %q (err %v); want %s seeing %s", c.Name, to, gotServer, gotSeen, err, server, seen)
	}
	for range 3 {
		if gotServer, gotSeen, err = c.Call(t, to, 2*time.Second); err != nil || gotServer != server || gotSeen != seen {
			t.Fatalf("%s → %s again: served by %q seeing %q (err %v); want %s seeing %s", c.Name, to, gotServer, gotSeen, err, server, seen)
		}
	}
}

// expectRefused waits until c's connections to to fail (a refusal, or a
// drop: a timeout), then requires it twice more.
func expectRefused(t *testing.T, c *Container, to netip.AddrPort) {
	t.Helper()
	var server string
	if !waitUntil(20*time.Second, func() bool {
		var err error
		server, _, err = c.Call(t, to, time.Second)
		return err != nil
	}) {
		t.Fatalf("%s → %s is still served (by %s); want it refused", c.Name, to, server)
	}
	for range 2 {
		if server, _, err := c.Call(t, to, time.Second); err == nil {
			t.Fatalf("%s → %s served by %s after it was refused", c.Name, to, server)
		}
	}
}

// waitMetric waits until the metric's samples with labels on n exceed was.
func waitMetric(t *testing.T, n *Node, name string, was float64, labels ...string) {
	t.Helper()
	var now float64
	if !waitUntil(10*time.Second, func() bool { now = n.Metric(t, name, labels...); return now > was }) {
		t.Fatalf("%s: %s%v stays at %v (was %v before the refusals); want it to count them", n.Name, name, labels, now, was)
	}
}

// waitEndpoints waits until every node's API lists exactly instances as
// api's endpoints and returns the highest seq they answered at.
func waitEndpoints(t *testing.T, nodes []*Node, instances ...string) uint64 {
	t.Helper()
	var seq uint64
	for _, n := range nodes {
		var got []string
		if !waitUntil(nodeGrace+20*time.Second, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			l, err := n.API.Endpoints(ctx, "default")
			if err != nil {
				return false
			}
			got = endpointInstances(l.Items, "api")
			seq = max(seq, l.Seq)
			return slices.Equal(got, instances)
		}) {
			t.Fatalf("%s: api's endpoints are %v; want %v", n.Name, got, instances)
		}
	}
	return seq
}

func endpointInstances(eps []cluster.Endpoints, service string) []string {
	var out []string
	for _, e := range eps {
		if e.Service == service {
			for _, a := range e.Addresses {
				out = append(out, a.Instance)
			}
		}
	}
	slices.Sort(out)
	return out
}

// waitApplied waits until n's status is ready (its data plane in place) at
// seq or later.
func waitApplied(t *testing.T, n *Node, seq uint64) {
	t.Helper()
	if !waitUntil(10*time.Second, func() bool {
		st, err := n.status()
		return err == nil && st.Ready && st.Seq >= seq
	}) {
		t.Fatalf("%s: not ready at seq %d within 10s", n.Name, seq)
	}
}
