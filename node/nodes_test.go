package node

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/node/nodeconfig"
)

// runed writes its record when it starts, with its explicit subnet, beats
// it, and refuses a subnet another node holds.
func TestRuntimeWritesAndBeatsItsNodeRecord(t *testing.T) {
	dir := t.TempDir()
	rt, err := Acquire(nodeconfig.Config{DataDir: dir, NodeName: "n1", NodeSubnet: "10.88.5.0/24", NodeGrace: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	first, ok := rt.View().Snapshot().Node("n1")
	if !ok || first.Value.Subnet.String() != "10.88.5.0/24" || first.Value.HeartbeatEvery != 100*time.Millisecond {
		t.Fatalf("n1's record once Acquire returns: %+v (found %v)", first.Value, ok)
	}
	testkit.Eventually(t, 5*time.Second, "a heartbeat", func() bool {
		cur, _ := rt.View().Snapshot().Node("n1")
		return cur.Rev != first.Rev && cur.Value.Heartbeat.After(first.Value.Heartbeat)
	})
	if _, _, err := rt.Controller().RegisterNode(context.Background(), cluster.NodeSpec{Name: "n2", Subnet: netip.MustParsePrefix("10.88.6.0/24")}); err != nil {
		t.Fatal(err)
	}
	rt.Release()
	_, err = Acquire(nodeconfig.Config{DataDir: dir, NodeName: "n1", NodeSubnet: "10.88.6.0/24"})
	if err == nil || !strings.Contains(err.Error(), "--node-subnet 10.88.6.0/24: node n2 holds 10.88.6.0/24") {
		t.Fatalf("taking n2's subnet: %v", err)
	}
	// Without --node-subnet the node keeps the one it holds.
	rt, err = Acquire(nodeconfig.Config{DataDir: dir, NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Release()
	if rec, _ := rt.View().Snapshot().Node("n1"); rec.Value.Subnet.String() != "10.88.5.0/24" {
		t.Errorf("after a restart n1 has %s, want its 10.88.5.0/24", rec.Value.Subnet)
	}
}

// The leader — this node on the single-node store, and as the one member
// of a Raft cluster — marks a peer record that stops beating: its
// instances become unready after the grace, this node's stay, and the
// peer's come back when it beats again.
func TestSilentPeerIsMarkedDown(t *testing.T) {
	for _, backend := range []string{"badger", "raft"} {
		t.Run(backend, func(t *testing.T) {
			// No routes: the test runs in the host's network namespace, which
			// tests must not change, and its synthetic peer has an address.
			cfg := nodeconfig.Config{DataDir: t.TempDir(), NodeName: "n1", NodeGrace: 300 * time.Millisecond, NoRoutes: true}
			if backend == "raft" {
				cfg.ClusterAddr, cfg.Bootstrap = testkit.FreeAddr(t), true
			}
			rt, err := Acquire(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Release()
			silentPeerIsMarkedDown(t, rt)
		})
	}
}

func silentPeerIsMarkedDown(t *testing.T, rt *Runtime) {
	ctx := context.Background()
	ctl := rt.Controller()
	if _, _, err := ctl.Cast(ctx, []cluster.SourceFile{{Name: "api.yaml", Data: []byte("service:\n  name: api\n  ports:\n    - port: 80\n")}}); err != nil {
		t.Fatal(err)
	}
	peer, _, err := ctl.RegisterNode(ctx, cluster.NodeSpec{Name: "n2", Address: netip.MustParseAddr("198.51.100.2"), HeartbeatEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []cluster.Instance{
		{ID: "api-n1", Node: "n1", IP: netip.MustParseAddr("10.88.0.2"), Ready: true},
		{ID: "api-n2", Node: "n2", IP: peer.Subnet.Addr().Next().Next(), Ready: true},
	} {
		in.Service = "api"
		if _, err := ctl.RegisterInstance(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	endpoints := func(want ...string) func() bool {
		return func() bool {
			ep, _ := rt.View().Snapshot().Endpoints(cluster.NamespacedName{Namespace: "default", Name: "api"})
			var got []string
			for _, a := range ep.Value.Addresses {
				got = append(got, a.Instance)
			}
			return slices.Equal(got, want)
		}
	}
	testkit.Eventually(t, 5*time.Second, "n2's instance to leave the endpoints after the grace", endpoints("api-n1"))
	if rec, _ := rt.View().Snapshot().Node("n2"); rec.Value.Down.IsZero() {
		t.Errorf("n2's record does not say it is down: %+v", rec.Value)
	}
	if _, err := ctl.Heartbeat(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if !endpoints("api-n1", "api-n2")() {
		t.Error("n2's instance did not come back with its heartbeat")
	}
}
