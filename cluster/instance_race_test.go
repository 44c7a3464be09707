package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"testing"

	"github.com/runenet/runenet/orderedlog"
)

// Registrations racing for one instance id (from two services and two
// nodes) or for one IP (as different instances) leave exactly one owner: one
// stored record per id, one instance per IP, and only the owning service's
// endpoints naming it. A View rebuilt from the store agrees with the live one.
func TestConcurrentRegistrationsNeverShareAnInstanceOrAnIP(t *testing.T) {
	n := newNode(t, "10.96.0.0/16")
	ctx := context.Background()
	cast(t, n, svcYAML("a", "default", ""), svcYAML("b", "default", ""))
	const rounds = 50
	race := func(writers int, in func(w int) Instance) []error {
		var wg sync.WaitGroup
		errs := make([]error, writers)
		start := make(chan struct{})
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[w] = n.ctl.RegisterInstance(ctx, in(w))
			}()
		}
		close(start)
		wg.Wait()
		return errs
	}
	services := []string{"a", "b"}
	nodes := []string{"n1", "n2"}
	for r := 0; r < rounds; r++ {
		id := fmt.Sprintf("x-%d", r)
		ip := netip.AddrFrom4([4]byte{172, 16, 1, byte(r + 1)})
		// Two writers only: a third would repair what the first two broke.
		for w, err := range race(2, func(w int) Instance {
			return Instance{ID: id, Service: services[w], Node: nodes[w*(r%2)], IP: ip, Ready: true}
		}) {
			if err != nil {
				t.Fatalf("round %d: writer %d re-registering one id: %v", r, w, err)
			}
		}
		checkInstanceOwners(t, n)

		shared := netip.AddrFrom4([4]byte{172, 16, 2, byte(r + 1)})
		won := 0
		for w, err := range race(8, func(w int) Instance {
			return Instance{ID: fmt.Sprintf("y-%d-%d", r, w), Service: services[w%2], Node: nodes[w/2%2], IP: shared, Ready: true}
		}) {
			switch {
			case err == nil:
				won++
			case KindOf(err) != KindConflict:
				t.Fatalf("round %d: writer %d lost the race for %s with %v, want a conflict", r, w, shared, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d instances registered ip %s, want exactly 1", r, won, shared)
		}
		checkInstanceOwners(t, n)
	}
}

// checkInstanceOwners checks the store and the View for instances held twice.
func checkInstanceOwners(t *testing.T, n *testNode) {
	t.Helper()
	ctx := context.Background()
	kvs, seq, err := n.log.List(ctx, orderedlog.PrefixLocalInstances)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.view.WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
	byID := map[string]string{}
	byIP := map[netip.Addr]string{}
	for _, kv := range kvs {
		var in Instance
		if err := in.decode(kv.Value); err != nil {
			t.Fatal(err)
		}
		if other, ok := byID[in.ID]; ok {
			t.Fatalf("instance %s is stored twice: %s and %s", in.ID, other, kv.Key)
		}
		if other, ok := byIP[in.IP]; ok {
			t.Fatalf("ip %s is held by two instances: %s and %s", in.IP, other, kv.Key)
		}
		byID[in.ID], byIP[in.IP] = kv.Key, kv.Key
	}
	snap := n.view.Snapshot()
	for _, ep := range snap.AllEndpoints("") {
		for _, a := range ep.Value.Addresses {
			in, ok := snap.Instance(a.Instance)
			if !ok || in.Value.Service != ep.Value.Service || in.Value.Namespace != ep.Value.Namespace || in.Value.IP != a.IP {
				t.Fatalf("endpoints of %s/%s name instance %s (%s), which is %+v", ep.Value.Namespace, ep.Value.Service, a.Instance, a.IP, in.Value)
			}
		}
	}
	if got := snap.NumInstances(); got != len(kvs) {
		t.Fatalf("the View holds %d instances, the store %d", got, len(kvs))
	}
	fresh, err := LoadFrom(ctx, n.log)
	if err != nil {
		t.Fatal(err)
	}
	if live, relisted := snap.Instances("", ""), fresh.Instances("", ""); fresh.Seq == snap.Seq && !reflect.DeepEqual(live, relisted) {
		t.Fatalf("the live View and one rebuilt from the store disagree:\n live %v\n store %v", live, relisted)
	}
}

// Deregistering an instance, moving it to another IP or deleting its service
// releases its claims: the id and the IP can be registered again.
func TestInstanceClaimsAreReleased(t *testing.T) {
	n := newNode(t, "10.96.0.0/16")
	ctx := context.Background()
	cast(t, n, svcYAML("a", "default", ""), svcYAML("b", "default", ""))
	ip1, ip2 := netip.MustParseAddr("172.16.9.1"), netip.MustParseAddr("172.16.9.2")
	register := func(id, svc, node string, ip netip.Addr) {
		t.Helper()
		if _, err := n.ctl.RegisterInstance(ctx, Instance{ID: id, Service: svc, Node: node, IP: ip, Ready: true}); err != nil {
			t.Fatalf("register %s (%s, %s, %s): %v", id, svc, node, ip, err)
		}
		checkInstanceOwners(t, n)
	}
	register("x", "a", "n1", ip1)
	if _, err := n.ctl.DeregisterInstance(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	register("y", "a", "n1", ip1) // ip1 released by the deregistration
	register("x", "b", "n2", ip2) // the id too
	if _, err := n.ctl.RegisterInstance(ctx, Instance{ID: "y", Service: "a", Node: "n1", IP: ip2}); KindOf(err) != KindConflict {
		t.Fatalf("taking another instance's ip: %v, want a conflict", err)
	}
	register("x", "b", "n1", netip.MustParseAddr("172.16.9.3")) // moves x's node and IP
	register("z", "a", "n1", ip2)                               // ip2 released by the move
	if _, err := n.ctl.DeleteService(ctx, NamespacedName{"default", "b"}); err != nil {
		t.Fatal(err)
	}
	cast(t, n, svcYAML("b", "default", ""))
	register("x", "b", "n2", netip.MustParseAddr("172.16.9.3")) // id and ip released by the delete
}
