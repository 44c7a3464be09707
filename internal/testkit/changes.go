package testkit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/runenet/runenet/cluster"
)

// RandomChange makes one random write through the controller and returns
// its seq: a service (12 names in 2 namespaces, random ports, sometimes an
// ingress or egress policy) cast or deleted, one of 60 instances
// registered (on one of three nodes, n1-n3, as the log replicates every
// node's instances), flipped ready/unready or deregistered, or a node
// record of n1-n3 registered (at one of two addresses), heartbeating or
// removed. Tests that keep
// derived state incrementally compare it with a rebuild after each.
func (c *Cluster) RandomChange(t testing.TB, rng *rand.Rand) uint64 {
	t.Helper()
	ctx := context.Background()
	s := c.View.Snapshot()
	name := fmt.Sprintf("svc%d", rng.IntN(12))
	ns := fmt.Sprintf("ns%d", rng.IntN(2))
	_, exists := s.Service(cluster.NamespacedName{Namespace: ns, Name: name})
	instances := s.Instances("", "")
	var seq uint64
	var err error
	if rng.IntN(8) == 0 {
		return c.randomNodeChange(t, rng)
	}
	switch op := rng.IntN(10); {
	case op < 3 || !exists:
		seq = c.Cast(t, randomService(rng, ns, name))
	case op == 3:
		seq, err = c.Ctl.DeleteService(ctx, cluster.NamespacedName{Namespace: ns, Name: name})
	case op < 7 || len(instances) == 0:
		id := rng.IntN(60)
		seq, err = c.Ctl.RegisterInstance(ctx, cluster.Instance{
			ID: fmt.Sprintf("in%d", id), Namespace: ns, Service: name, Node: fmt.Sprintf("n%d", 1+rng.IntN(3)),
			IP: netip.AddrFrom4([4]byte{10, 1, 0, byte(id + 1)}), Ready: rng.IntN(4) > 0,
		})
	case op < 9:
		in := instances[rng.IntN(len(instances))].Value
		seq, err = c.Ctl.SetInstanceReady(ctx, in.ID, !in.Ready)
	default:
		seq, err = c.Ctl.DeregisterInstance(ctx, instances[rng.IntN(len(instances))].Value.ID)
	}
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func (c *Cluster) randomNodeChange(t testing.TB, rng *rand.Rand) uint64 {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("n%d", 1+rng.IntN(3))
	_, exists := c.View.Snapshot().Node(name)
	var seq uint64
	var err error
	switch op := rng.IntN(3); {
	case op == 0 || !exists:
		return c.RegisterNode(t, name, netip.AddrFrom4([4]byte{192, 168, 50, byte(1 + rng.IntN(2))}))
	case op == 1:
		seq, err = c.Ctl.Heartbeat(ctx, name)
	default:
		seq, err = c.Ctl.RemoveNode(ctx, name)
	}
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func randomService(rng *rand.Rand, ns, name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "service:\n  name: %s\n  namespace: %s\n  ports:\n", name, ns)
	ports := []string{"{name: http, port: 80}", "{name: dns, port: 53, protocol: udp}", "{name: alt, port: 8080, targetPort: 80}"}
	n := 1 + rng.IntN(len(ports))
	for _, i := range rng.Perm(len(ports))[:n] {
		fmt.Fprintf(&b, "    - %s\n", ports[i])
	}
	switch rng.IntN(4) {
	case 1:
		b.WriteString("  networkPolicy:\n    ingress:\n      - from: [{service: svc1}]\n")
	case 2:
		b.WriteString("  networkPolicy:\n    egress:\n      - to: [{cidr: 10.0.0.0/8}]\n")
	}
	return b.String()
}

// RandomSnapshots makes steps random changes (RandomChange) and hands
// apply about two in five of the resulting snapshots, so that a consumer
// skips the rest and must take their changes together, and now and then
// instead a full listing of the log (cluster.LoadFrom), as a View gets
// after a re-list: what an incremental consumer must survive.
func (c *Cluster) RandomSnapshots(t testing.TB, rng *rand.Rand, steps int, apply func(step int, s *cluster.Snapshot)) {
	t.Helper()
	ctx := context.Background()
	for step := range steps {
		seq := c.RandomChange(t, rng)
		if err := c.View.WaitFor(ctx, seq); err != nil {
			t.Fatal(err)
		}
		s := c.View.Snapshot()
		switch x := rng.IntN(20); {
		case x == 0:
			var err error
			if s, err = cluster.LoadFrom(ctx, c.Log); err != nil {
				t.Fatal(err)
			}
		case x < 12:
			continue
		}
		apply(step, s)
	}
}
