package cluster

import (
	"context"
	"net/netip"
	"testing"

	"github.com/runenet/runenet/orderedlog"
)

// An instance IP is the source identity policy gives a connection on every
// node, so it must belong to one instance cluster-wide: an IP held by an
// instance on another node cannot be registered, also when the holder was
// written before instance claim keys existed (no claim in the store), and it
// is free again only once the holder's removal is in the log.
func TestInstanceIPHeldOnAnyNodeCannotBeRegistered(t *testing.T) {
	n := newNode(t, "10.96.0.0/16")
	ctx := context.Background()
	cast(t, n, svcYAML("web", "default", ""), svcYAML("other", "default", ""))
	held, legacy := netip.MustParseAddr("172.16.5.1"), netip.MustParseAddr("172.16.5.2")
	if _, err := n.ctl.RegisterInstance(ctx, Instance{ID: "web-1", Service: "web", Node: "n2", IP: held, Ready: true}); err != nil {
		t.Fatal(err)
	}
	// A store from before the claims: the record alone, no instance-ips/ key.
	old := Instance{ID: "web-0", Service: "web", Namespace: "default", Node: "n3", IP: legacy, Ready: true}
	seq, err := n.log.Propose(ctx, []orderedlog.Op{orderedlog.Put(instanceKey(old.Node, old.ID), old.encode())})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.view.WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}

	for _, ip := range []netip.Addr{held, legacy} {
		for _, node := range []string{"n1", "n2", "n3"} {
			_, err := n.ctl.RegisterInstance(ctx, Instance{ID: "other-1", Service: "other", Node: node, IP: ip, Ready: true})
			if KindOf(err) != KindConflict {
				t.Errorf("other-1 on %s taking %s, held by web on another node: %v, want a conflict", node, ip, err)
			}
		}
		if got, ok := n.view.Snapshot().InstanceByIP(ip); !ok || got.Value.Service != "web" {
			t.Fatalf("after the refused registrations %s belongs to %+v, want web's instance", ip, got.Value)
		}
	}
	checkInstanceOwners(t, n)

	// Released by the deregistration, in the log, before the next owner
	// may claim it: the next registration sees the removal.
	for id, ip := range map[string]netip.Addr{"web-1": held, "web-0": legacy} {
		release, err := n.ctl.DeregisterInstance(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		claim, err := n.ctl.RegisterInstance(ctx, Instance{ID: "other-" + id, Service: "other", Node: "n1", IP: ip, Ready: true})
		if err != nil {
			t.Fatalf("registering %s after %s released it: %v", ip, id, err)
		}
		if claim <= release {
			t.Errorf("%s: claimed at seq %d, not after its release at %d", ip, claim, release)
		}
		if got, _ := n.view.Snapshot().InstanceByIP(ip); got.Value.ID != "other-"+id {
			t.Errorf("%s belongs to %+v, want other-%s", ip, got.Value, id)
		}
	}
	checkInstanceOwners(t, n)
}
