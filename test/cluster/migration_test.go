package e2ecluster

import (
	"context"
	"maps"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/runenet/runenet/api"
)

// TestMigrateSingleNode: a single-node runed's data directory, started
// with --cluster-addr --bootstrap, becomes the first node of a cluster with
// the same services and VIPs (the old store kept aside); nodes that join it
// serve them too, with identical state.
func TestMigrateSingleNode(t *testing.T) {
	nt := NewNet(t, 3)
	n1 := nt.Nodes[0]
	n1.StartSingle(t)
	if !waitUntil(30*time.Second, func() bool {
		st, err := n1.status()
		return err == nil && st.Cluster != nil && st.Cluster.Backend == api.BackendBadger
	}) {
		t.Fatal("the single-node runed does not serve its API within 30s")
	}
	vips := map[string]string{}
	for _, name := range []string{"web", "db", "cache"} {
		vips[name] = vipOf(t, n1.Cast(t, serviceDoc(name)))
	}
	before := servicesOf(t, n1)
	n1.Stop(t)

	n1.Start(t, "--bootstrap")
	n1.WaitUp(t, 30*time.Second)
	if moved, _ := filepath.Glob(filepath.Join(n1.DataDir, "store.migrated-*")); len(moved) != 1 {
		t.Errorf("the single-node store was not kept aside as store.migrated-*: %v", moved)
	}
	if after := servicesOf(t, n1); !maps.Equal(before, after) {
		t.Errorf("services before the migration %v, after %v", before, after)
	}
	for _, m := range nt.Nodes[1:] {
		m.Start(t, "--join", n1.ClusterAddr(), "--join-token", nt.JoinToken(t, n1))
		m.WaitUp(t, 30*time.Second)
	}
	nt.WaitVoters(t, 3, 60*time.Second)
	Converged(t, nt.Nodes, 30*time.Second)
	for _, n := range nt.Nodes {
		for name, vip := range vips {
			waitDig(t, n, name+".default.rune", vip, 10*time.Second)
		}
	}
	// The migrated cluster allocates new VIPs around the old ones.
	if vip := vipOf(t, nt.Nodes[2].Cast(t, serviceDoc("after"))); vip == vips["web"] || vip == vips["db"] || vip == vips["cache"] {
		t.Errorf("a service cast after the migration got a migrated service's VIP %s", vip)
	}
}

// servicesOf is each service's VIP as n lists them.
func servicesOf(t *testing.T, n *Node) map[string]netip.Addr {
	t.Helper()
	l, err := n.API.Services(context.Background(), "")
	if err != nil {
		t.Fatalf("%s: services: %v", n.Name, err)
	}
	out := map[string]netip.Addr{}
	for _, s := range l.Items {
		out[s.Spec.Namespace+"/"+s.Spec.Name] = s.VIP
	}
	return out
}
