package node

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/api"
	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/node/nodeconfig"
)

// --cluster-addr --bootstrap makes a one-node Raft cluster with its own CA;
// a service cast on it survives a restart without --bootstrap.
func TestClusterNodeBootstrapsAndRestarts(t *testing.T) {
	dir := t.TempDir()
	cfg := nodeconfig.Config{DataDir: dir, NodeName: "n1", ClusterAddr: testkit.FreeAddr(t), Bootstrap: true}
	r, err := Acquire(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, seq, err := r.Controller().Cast(ctx, []cluster.SourceFile{{Name: "api.yaml", Data: []byte("service:\n  name: api\n  ports:\n    - name: http\n      port: 80\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.View().WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
	vip, _ := r.View().Snapshot().Service(cluster.NamespacedName{Namespace: "default", Name: "api"})
	for _, f := range []string{"ca.pem", "ca-key.pem", "node.pem", "node-key.pem"} {
		if fi, err := os.Stat(filepath.Join(dir, "cluster-tls", f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("cluster-tls/%s: %v (mode %v), want a private file", f, err, fi)
		}
	}
	if err := r.Release(); err != nil {
		t.Fatal(err)
	}

	cfg.Bootstrap = false
	r, err = Acquire(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if err := r.View().WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
	got, ok := r.View().Snapshot().Service(cluster.NamespacedName{Namespace: "default", Name: "api"})
	if !ok || got.Value.VIP != vip.Value.VIP {
		t.Fatalf("after restart: service %+v (found %v), want VIP %v", got, ok, vip.Value.VIP)
	}
}

func TestClusterConfigRefusals(t *testing.T) {
	for _, tc := range []struct {
		cfg  nodeconfig.Config
		want string
	}{
		{nodeconfig.Config{ClusterAddr: "0.0.0.0:7946"}, "needs a concrete IP"},
		{nodeconfig.Config{ClusterAddr: "node1:7946"}, "not a host name"},
		{nodeconfig.Config{Bootstrap: true}, "--bootstrap creates a cluster: it needs --cluster-addr"},
		{nodeconfig.Config{ClusterAddr: "127.0.0.1:7946"}, "start the first node with --bootstrap"},
	} {
		tc.cfg.DataDir, tc.cfg.NodeName = t.TempDir(), "n1"
		if tc.cfg.ClusterAddr == "127.0.0.1:7946" {
			tc.cfg.ClusterAddr = testkit.FreeAddr(t)
		}
		if r, err := Acquire(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			if err == nil {
				r.Release()
			}
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}

	// A cluster member's data dir keeps its name: the cluster knows the
	// node by the name in its certificate.
	member := nodeconfig.Config{DataDir: t.TempDir(), NodeName: "n1", ClusterAddr: testkit.FreeAddr(t), Bootstrap: true}
	r, err := Acquire(member)
	if err != nil {
		t.Fatal(err)
	}
	r.Release()
	member.NodeName, member.Bootstrap = "n2", false
	if r, err := Acquire(member); err == nil || !strings.Contains(err.Error(), "cluster certificate") || !strings.Contains(err.Error(), "is node n1's; start it with --node-name n1") {
		if err == nil {
			r.Release()
		}
		t.Errorf("a member's data dir under another --node-name: %v, want a refusal naming n1", err)
	}

	// A single-node store is never hidden behind a cluster it would join
	// (--bootstrap migrates it: migrate_test.go).
	dir := t.TempDir()
	r, err = Acquire(nodeconfig.Config{DataDir: dir, NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	r.Release()
	if _, err := Acquire(nodeconfig.Config{DataDir: dir, NodeName: "n1", ClusterAddr: testkit.FreeAddr(t)}); err == nil || !strings.Contains(err.Error(), "holds a single-node store") {
		t.Fatalf("a cluster node over a Badger store without --bootstrap: %v, want a refusal", err)
	}
}

// apiClient is a client of r's API (its unix socket in the data dir).
func apiClient(t *testing.T, r *Runtime) *api.Client {
	t.Helper()
	c, err := api.NewClient(r.Config().APIAddr, "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// roles is each member's role as the node behind c lists it.
func roles(t *testing.T, c *api.Client) map[string]string {
	t.Helper()
	list, err := c.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range list.Items {
		out[n.Name] = n.Role
	}
	return out
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60s", what)
		}
	}
}

// Three runtimes in one process on loopback: n1 bootstraps, n2 and n3 join
// with a token from n1's API (n3 through n2) and are promoted to voters; a
// cast on n3 is on every node; n2 restarted on its data dir, with no token
// and then with its --join and --join-token again (ignored), rejoins and
// sees a cast made while it was down; n3 is removed through n1's API, its
// node record with it.
func TestClusterNodesJoinPromoteAndRejoin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	live := map[string]*Runtime{} // by node name, released when the test ends
	t.Cleanup(func() {
		for _, r := range live {
			r.Release()
		}
	})
	start := func(cfg nodeconfig.Config) *Runtime {
		t.Helper()
		r, err := Acquire(cfg)
		if err != nil {
			t.Fatalf("%s: %v", cfg.NodeName, err)
		}
		live[cfg.NodeName] = r
		return r
	}
	n1 := start(nodeconfig.Config{DataDir: t.TempDir(), NodeName: "n1", ClusterAddr: testkit.FreeAddr(t), Bootstrap: true})
	c1 := apiClient(t, n1)
	tok, err := c1.CreateJoinToken(ctx, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.Token, "RUNETKN-1-") || time.Until(tok.Expires) > 10*time.Minute || time.Until(tok.Expires) < 9*time.Minute {
		t.Fatalf("join token %+v", tok)
	}

	cfg2 := nodeconfig.Config{DataDir: t.TempDir(), NodeName: "n2", ClusterAddr: testkit.FreeAddr(t), Join: n1.Config().ClusterAddr, JoinToken: tok.Token}
	// Joiners start as non-voters (orderedlog/raft's tests check that
	// right after the join; here the runtime's start may outlast the
	// promotion delay).
	n2 := start(cfg2)
	n3 := start(nodeconfig.Config{DataDir: t.TempDir(), NodeName: "n3", ClusterAddr: testkit.FreeAddr(t), Join: cfg2.ClusterAddr, JoinToken: tok.Token})
	c3 := apiClient(t, n3)
	waitUntil(t, "three voters", func() bool {
		r := roles(t, c3)
		return r["n1"] == "voter" && r["n2"] == "voter" && r["n3"] == "voter"
	})

	cast := func(r *Runtime, name string) uint64 {
		t.Helper()
		_, seq, err := r.Controller().Cast(ctx, []cluster.SourceFile{{Name: name + ".yaml", Data: []byte("service:\n  name: " + name + "\n  ports:\n    - name: http\n      port: 80\n")}})
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	has := func(r *Runtime, name string, seq uint64) {
		t.Helper()
		if err := r.View().WaitFor(ctx, seq); err != nil {
			t.Fatalf("%s: %v", r.Config().NodeName, err)
		}
		if _, ok := r.View().Snapshot().Service(cluster.NamespacedName{Namespace: "default", Name: name}); !ok {
			t.Fatalf("%s lacks service %s", r.Config().NodeName, name)
		}
	}
	seq := cast(n3, "api")
	for _, r := range []*Runtime{n1, n2, n3} {
		has(r, "api", seq)
	}
	// Every node wrote its record, each with a subnet of its own.
	subnets := map[string]string{}
	for _, e := range n1.View().Snapshot().Nodes() {
		subnets[e.Value.Name] = e.Value.Subnet.String()
	}
	if len(subnets) != 3 || subnets["n1"] == subnets["n2"] || subnets["n2"] == subnets["n3"] || subnets["n1"] == subnets["n3"] {
		t.Fatalf("node records' subnets %v, want three distinct", subnets)
	}
	for _, f := range []string{"ca.pem", "ca-key.pem", "node.pem", "node-key.pem"} {
		if fi, err := os.Stat(filepath.Join(cfg2.DataDir, "cluster-tls", f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("n2's cluster-tls/%s: %v (mode %v), want a private file", f, err, fi)
		}
	}

	// Restarts: with no token, then with the same --join and
	// --join-token again, which the member's data dir ignores.
	restarted := cfg2
	restarted.Join, restarted.JoinToken = "", ""
	for i, cfg := range []nodeconfig.Config{restarted, cfg2} {
		delete(live, "n2")
		if err := n2.Release(); err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("web%d", i)
		seq = cast(n1, name)
		n2 = start(cfg)
		if rec, _ := n2.View().Snapshot().Node("n2"); rec.Value.Subnet.String() != subnets["n2"] {
			t.Errorf("n2 restarted with subnet %s, want its %s", rec.Value.Subnet, subnets["n2"])
		}
		has(n2, name, seq)
	}

	// n3's node record (as its heartbeat would write it) goes with it.
	if err := cluster.BootstrapContainerNetwork(ctx, n1.Log(), netip.MustParsePrefix("10.88.0.0/16")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n1.Controller().RegisterNode(ctx, cluster.NodeSpec{Name: "n3", Address: netip.MustParseAddr("127.0.0.1")}); err != nil {
		t.Fatal(err)
	}
	if err := c1.RemoveNode(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	if r := roles(t, c1); len(r) != 2 || r["n3"] != "" {
		t.Fatalf("after rune node remove n3: roles %v", r)
	}
	if _, ok := n1.View().Snapshot().Node("n3"); ok {
		t.Error("n3's node record outlived rune node remove n3")
	}
	if err := c1.RemoveNode(ctx, "n3"); err == nil || !strings.Contains(err.Error(), `node "n3" not found`) {
		t.Fatalf("removing n3 again: %v, want not found", err)
	}
}

// A wrong or expired join token keeps the joiner from opening: the error
// says "join token" and what is wrong.
func TestClusterJoinRefusesABadToken(t *testing.T) {
	n1, err := Acquire(nodeconfig.Config{DataDir: t.TempDir(), NodeName: "n1", ClusterAddr: testkit.FreeAddr(t), Bootstrap: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n1.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := apiClient(t, n1).CreateJoinToken(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wrong := tok.Token[:len(tok.Token)-1] + map[bool]string{true: "1", false: "0"}[strings.HasSuffix(tok.Token, "0")]
	for _, tc := range []struct{ token, want string }{
		{wrong, "join token: wrong secret"},
		{"", "needs a join token"},
	} {
		dir := t.TempDir()
		r, err := Acquire(nodeconfig.Config{DataDir: dir, NodeName: "n2", ClusterAddr: testkit.FreeAddr(t), Join: n1.Config().ClusterAddr, JoinToken: tc.token})
		if err == nil {
			r.Release()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("joining with token %q: %v, want %q", tc.token, err, tc.want)
		}
		if _, err := os.Stat(filepath.Join(dir, "cluster-tls", "node.pem")); err == nil {
			t.Errorf("a refused join left a node certificate in %s", dir)
		}
	}
}
