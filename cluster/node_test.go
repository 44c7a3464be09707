package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// newClusterNode is newNode with the container network bootstrapped too.
func newClusterNode(t *testing.T) *testNode {
	t.Helper()
	n := newNode(t, "10.96.0.0/16")
	if err := BootstrapContainerNetwork(context.Background(), n.log, netip.MustParsePrefix("10.88.0.0/16")); err != nil {
		t.Fatal(err)
	}
	if err := n.view.WaitFor(context.Background(), n.log.Tail()); err != nil {
		t.Fatal(err)
	}
	return n
}

func registerNode(t *testing.T, n *testNode, spec NodeSpec) Node {
	t.Helper()
	rec, seq, err := n.ctl.RegisterNode(context.Background(), spec)
	if err != nil {
		t.Fatalf("register node %s: %v", spec.Name, err)
	}
	if err := n.view.WaitFor(context.Background(), seq); err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestNodesClaimTheLowestFreeSubnet(t *testing.T) {
	n := newClusterNode(t)
	before := n.view.Snapshot()
	a := registerNode(t, n, NodeSpec{Name: "n1", Address: netip.MustParseAddr("192.0.2.1"), Roles: []string{"edge"}, HeartbeatEvery: 5 * time.Second})
	b := registerNode(t, n, NodeSpec{Name: "n2", Address: netip.MustParseAddr("192.0.2.2")})
	if a.Subnet.String() != "10.88.0.0/24" || b.Subnet.String() != "10.88.1.0/24" {
		t.Fatalf("subnets %s and %s, want 10.88.0.0/24 and 10.88.1.0/24", a.Subnet, b.Subnet)
	}
	s := n.view.Snapshot()
	got, ok := s.Node("n1")
	if !ok || got.Value.Address != a.Address || !got.Value.HasRole("edge") || got.Value.HeartbeatEvery != 5*time.Second || !got.Value.Heartbeat.Equal(n.clock()) {
		t.Fatalf("n1's record: %+v (found %v), want %+v with a heartbeat at %s", got.Value, ok, a, n.clock())
	}
	var names []string
	for _, e := range s.Nodes() {
		names = append(names, e.Value.Name)
	}
	if !slices.Equal(names, []string{"n1", "n2"}) {
		t.Errorf("Nodes() = %v, want [n1 n2]", names)
	}
	if h := s.SubnetHolder(netip.MustParseAddr("10.88.1.77")); h != "n2" {
		t.Errorf("10.88.1.77 is held by %q, want n2", h)
	}
	if c := s.ChangesSince(before); c.Full || len(c.Nodes) != 2 || len(c.Services) != 0 {
		t.Errorf("changes since before the nodes: %+v, want nodes n1 and n2 only", c)
	}

	// A restart keeps the subnet; a heartbeat changes only the time.
	if again := registerNode(t, n, NodeSpec{Name: "n1", Address: a.Address}); again.Subnet != a.Subnet {
		t.Errorf("n1 re-registered with subnet %s, want its %s", again.Subnet, a.Subnet)
	}
	n.advance(time.Second)
	prev := n.view.Snapshot()
	seq, err := n.ctl.Heartbeat(context.Background(), "n2")
	if err != nil {
		t.Fatal(err)
	}
	n.view.WaitFor(context.Background(), seq)
	if c := n.view.Snapshot().ChangesSince(prev); c.Full || len(c.Services) != 0 || len(c.Nodes) != 1 {
		t.Errorf("changes of a heartbeat: %+v, want node n2 only", c)
	} else if _, ok := c.Nodes["n2"]; !ok {
		t.Errorf("changes of n2's heartbeat name %v", c.Nodes)
	}
	if e, _ := n.view.Snapshot().Node("n2"); !e.Value.Heartbeat.Equal(n.clock()) || e.Value.Subnet != b.Subnet {
		t.Errorf("after a heartbeat n2 is %+v, want heartbeat %s and subnet %s", e.Value, n.clock(), b.Subnet)
	}
	if _, err := n.ctl.Heartbeat(context.Background(), "n9"); KindOf(err) != KindNotFound {
		t.Errorf("heartbeat of an unregistered node: %v, want not found", err)
	}

	// A removed node's subnet is free again, and the lowest one is taken.
	seq, err = n.ctl.RemoveNode(context.Background(), "n1")
	if err != nil {
		t.Fatal(err)
	}
	n.view.WaitFor(context.Background(), seq)
	if _, ok := n.view.Snapshot().Node("n1"); ok {
		t.Error("n1's record survived RemoveNode")
	}
	if c := registerNode(t, n, NodeSpec{Name: "n3"}); c.Subnet.String() != "10.88.0.0/24" {
		t.Errorf("n3 got %s, want the freed 10.88.0.0/24", c.Subnet)
	}
}

func TestExplicitNodeSubnet(t *testing.T) {
	n := newClusterNode(t)
	ctx := context.Background()
	wide := registerNode(t, n, NodeSpec{Name: "n1", Subnet: netip.MustParsePrefix("10.88.0.0/23")})
	if wide.Subnet.String() != "10.88.0.0/23" {
		t.Fatalf("n1 got %s, want its explicit 10.88.0.0/23", wide.Subnet)
	}
	if b := registerNode(t, n, NodeSpec{Name: "n2"}); b.Subnet.String() != "10.88.2.0/24" {
		t.Errorf("n2 got %s, want 10.88.2.0/24 (n1's /23 covers the first two)", b.Subnet)
	}
	for _, tc := range []struct {
		subnet string
		kind   Kind
		msg    string
	}{
		{"10.88.1.0/24", KindConflict, "node n1 holds 10.88.1.0/24"},
		{"10.88.2.128/25", KindConflict, "node n2 holds"},
		{"10.89.0.0/24", KindInvalid, "inside the container CIDR 10.88.0.0/16"},
		{"10.0.0.0/8", KindInvalid, "inside the container CIDR"},
	} {
		_, _, err := n.ctl.RegisterNode(ctx, NodeSpec{Name: "n3", Subnet: netip.MustParsePrefix(tc.subnet)})
		if KindOf(err) != tc.kind || err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "--node-subnet") {
			t.Errorf("--node-subnet %s: %v, want a %v error naming --node-subnet and %q", tc.subnet, err, tc.kind, tc.msg)
		}
	}
	if _, ok := n.view.Snapshot().Node("n3"); ok {
		t.Error("a refused registration wrote a record")
	}
	// Moving to another explicit subnet releases the old blocks.
	if moved := registerNode(t, n, NodeSpec{Name: "n1", Subnet: netip.MustParsePrefix("10.88.9.0/24")}); moved.Subnet.String() != "10.88.9.0/24" {
		t.Fatalf("n1 moved to %s", moved.Subnet)
	}
	if h := n.view.Snapshot().SubnetHolder(netip.MustParseAddr("10.88.1.1")); h != "" {
		t.Errorf("n1's old block is still held by %q", h)
	}
	if c := registerNode(t, n, NodeSpec{Name: "n3"}); c.Subnet.String() != "10.88.0.0/24" {
		t.Errorf("n3 got %s, want the released 10.88.0.0/24", c.Subnet)
	}
}

// Nodes registering at once over one log, each with its own View and
// Controller as separate runed processes have, all get distinct subnets.
func TestConcurrentSubnetClaimsNeverCollide(t *testing.T) {
	for round := range 5 {
		lg := openLog(t, t.TempDir())
		ctx := context.Background()
		if err := Bootstrap(ctx, lg, netip.MustParsePrefix("10.96.0.0/16")); err != nil {
			t.Fatal(err)
		}
		if err := BootstrapContainerNetwork(ctx, lg, netip.MustParsePrefix("10.88.0.0/16")); err != nil {
			t.Fatal(err)
		}
		const racers = 6
		nodes := make([]*testNode, racers)
		for i := range nodes {
			nodes[i] = startNode(t, lg, ViewOptions{})
		}
		var wg sync.WaitGroup
		got := make([]Node, racers)
		errs := make([]error, racers)
		start := make(chan struct{})
		for i, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				got[i], _, errs[i] = n.ctl.RegisterNode(ctx, NodeSpec{Name: fmt.Sprintf("n%d", i)})
			}()
		}
		close(start)
		wg.Wait()
		seen := map[netip.Prefix]string{}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: n%d: %v", round, i, err)
			}
			if other, dup := seen[got[i].Subnet]; dup {
				t.Fatalf("round %d: n%d and %s both got %s", round, i, other, got[i].Subnet)
			}
			seen[got[i].Subnet] = got[i].Name
		}
		if err := nodes[0].view.WaitFor(ctx, lg.Tail()); err != nil {
			t.Fatal(err)
		}
		s := nodes[0].view.Snapshot()
		for _, e := range s.Nodes() {
			if h := s.SubnetHolder(e.Value.Subnet.Addr()); h != e.Value.Name {
				t.Errorf("round %d: %s's subnet %s is claimed by %q", round, e.Value.Name, e.Value.Subnet, h)
			}
			if e.Value.Subnet.Addr().As4()[2] >= racers {
				t.Errorf("round %d: %s got %s, past the lowest %d blocks", round, e.Value.Name, e.Value.Subnet, racers)
			}
		}
	}
}

func TestMarkNodeDownAndBack(t *testing.T) {
	n := newClusterNode(t)
	ctx := context.Background()
	cast(t, n, svcYAML("api", "default", ""))
	registerNode(t, n, NodeSpec{Name: "n1"})
	registerNode(t, n, NodeSpec{Name: "n2"})
	for _, in := range []Instance{
		{ID: "api-1", Node: "n1", IP: netip.MustParseAddr("10.88.0.2"), Ready: true},
		{ID: "api-2", Node: "n2", IP: netip.MustParseAddr("10.88.1.2"), Ready: true},
		{ID: "api-3", Node: "n2", IP: netip.MustParseAddr("10.88.1.3"), Ready: true},
		{ID: "api-4", Node: "n2", IP: netip.MustParseAddr("10.88.1.4")},
	} {
		in.Service, in.Namespace = "api", "default"
		if _, err := n.ctl.RegisterInstance(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	endpoints := func() []string {
		ep, _ := n.view.Snapshot().Endpoints(NamespacedName{"default", "api"})
		var ids []string
		for _, a := range ep.Value.Addresses {
			ids = append(ids, a.Instance)
		}
		return ids
	}
	stale, _ := n.view.Snapshot().Node("n2")
	// n2 beats once more: the leader's judgement at the older revision is out of date.
	if _, err := n.ctl.Heartbeat(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if marked, _, err := n.ctl.MarkNodeDown(ctx, "n2", stale.Rev); err != nil || marked {
		t.Fatalf("marking n2 down at a revision it has since beaten past: marked %v, %v; want nothing", marked, err)
	}
	cur, _ := n.view.Snapshot().Node("n2")
	marked, instances, err := n.ctl.MarkNodeDown(ctx, "n2", cur.Rev)
	if err != nil || !marked || instances != 2 {
		t.Fatalf("mark n2 down: marked %v %d, %v; want its 2 ready instances", marked, instances, err)
	}
	if got := endpoints(); !slices.Equal(got, []string{"api-1"}) {
		t.Fatalf("endpoints with n2 down: %v, want [api-1]", got)
	}
	down, _ := n.view.Snapshot().Node("n2")
	if down.Value.Down.IsZero() || !slices.Equal(down.Value.Unreadied, []string{"api-2", "api-3"}) {
		t.Fatalf("n2's record after marking: %+v", down.Value)
	}
	if marked, _, _ := n.ctl.MarkNodeDown(ctx, "n2", down.Rev); marked {
		t.Error("a node already down was marked again")
	}
	// While n2 was down its source said api-3 is unhealthy: coming back
	// must not make that one ready.
	if _, err := n.ctl.RegisterInstance(ctx, Instance{ID: "api-3", Service: "api", Namespace: "default", Node: "n2", IP: netip.MustParseAddr("10.88.1.3")}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ctl.Heartbeat(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if got := endpoints(); !slices.Equal(got, []string{"api-1", "api-2"}) {
		t.Errorf("endpoints once n2 beats again: %v, want [api-1 api-2]", got)
	}
	if back, _ := n.view.Snapshot().Node("n2"); !back.Value.Down.IsZero() || back.Value.Unreadied != nil {
		t.Errorf("n2's record after it came back: %+v", back.Value)
	}
}

func TestBootstrapContainerNetwork(t *testing.T) {
	n := newNode(t, "10.96.0.0/16")
	ctx := context.Background()
	if err := BootstrapContainerNetwork(ctx, n.log, netip.MustParsePrefix("10.96.0.0/20")); err == nil || !strings.Contains(err.Error(), "overlaps the cluster (VIP) CIDR") {
		t.Errorf("a container CIDR inside the VIP CIDR: %v", err)
	}
	if err := BootstrapContainerNetwork(ctx, n.log, netip.MustParsePrefix("10.88.0.0/16")); err != nil {
		t.Fatal(err)
	}
	if err := BootstrapContainerNetwork(ctx, n.log, netip.MustParsePrefix("10.88.0.0/16")); err != nil {
		t.Errorf("the same CIDR again: %v", err)
	}
	if err := BootstrapContainerNetwork(ctx, n.log, netip.MustParsePrefix("10.77.0.0/16")); err == nil || !strings.Contains(err.Error(), "--container-cidr 10.88.0.0/16") {
		t.Errorf("another CIDR: %v, want it to name the stored one", err)
	}
	if err := n.view.WaitFor(ctx, n.log.Tail()); err != nil {
		t.Fatal(err)
	}
	if cn := n.view.Snapshot().ContainerNetwork; cn == nil || cn.CIDR.String() != "10.88.0.0/16" {
		t.Errorf("the snapshot's container network: %+v", cn)
	}
}

func TestParseContainerCIDR(t *testing.T) {
	for in, want := range map[string]string{
		"10.88.0.0/16":   "",
		"172.20.0.0/24":  "",
		"10.88.0.0/25":   "want a /8 to /24",
		"10.88.0.1/16":   "host bits",
		"8.8.0.0/16":     "not private",
		"fd00::/64":      "only IPv4",
		"10.88.0.0":      "not a CIDR",
		"192.168.0.0/16": "",
	} {
		_, err := ParseContainerCIDR(in)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("ParseContainerCIDR(%q) = %v, want %q", in, err, want)
		}
	}
}

// Two nodes asking for the same explicit subnet at once: one gets it, the
// other is refused naming the winner.
func TestConcurrentExplicitSubnetClaims(t *testing.T) {
	for round := range 5 {
		n := newClusterNode(t)
		other := startNode(t, n.log, ViewOptions{})
		ctx := context.Background()
		want := netip.MustParsePrefix("10.88.42.0/24")
		errs := make([]error, 2)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, node := range []*testNode{n, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, _, errs[i] = node.ctl.RegisterNode(ctx, NodeSpec{Name: fmt.Sprintf("n%d", i), Subnet: want})
			}()
		}
		close(start)
		wg.Wait()
		won := -1
		for i, err := range errs {
			if err == nil {
				if won >= 0 {
					t.Fatalf("round %d: both nodes got %s", round, want)
				}
				won = i
			}
		}
		if won < 0 {
			t.Fatalf("round %d: neither got %s: %v", round, want, errs)
		}
		lost := errs[1-won]
		if KindOf(lost) != KindConflict || !strings.Contains(lost.Error(), fmt.Sprintf("node n%d holds 10.88.42.0/24", won)) {
			t.Errorf("round %d: the loser's error %v, want a conflict naming n%d", round, lost, won)
		}
	}
}
