package cluster

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"testing"
)

func changedNames(c Changes) []string {
	var out []string
	for n := range c.Services {
		out = append(out, n.String())
	}
	slices.Sort(out)
	return out
}

// TestChangesSince: each snapshot names the services a batch touched, a
// consumer that skipped snapshots gets the union, and anything it cannot
// know incrementally is a full change.
func TestChangesSince(t *testing.T) {
	n := newNode(t, "10.96.0.0/16")
	ctx := context.Background()
	cast(t, n, svcYAML("api", "default", ""), svcYAML("web", "default", ""), svcYAML("db", "default", ""))
	a := n.view.Snapshot()
	if c := a.ChangesSince(nil); !c.Full {
		t.Errorf("since nil: %+v, want full", c)
	}
	if c := a.ChangesSince(a); c.Full || len(c.Services) != 0 {
		t.Errorf("since itself: %+v, want nothing", c)
	}
	reg := func(id, svc string, ip string) uint64 {
		seq, err := n.ctl.RegisterInstance(ctx, Instance{ID: id, Service: svc, Namespace: "default", Node: "n1", IP: netip.MustParseAddr(ip), Ready: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.view.WaitFor(ctx, seq); err != nil {
			t.Fatal(err)
		}
		return seq
	}
	reg("api-1", "api", "10.1.0.1")
	b := n.view.Snapshot()
	if got := changedNames(b.ChangesSince(a)); !slices.Equal(got, []string{"default/api"}) {
		t.Errorf("one instance of api: changed %v, want [default/api]", got)
	}
	reg("web-1", "web", "10.1.0.2")
	seq, err := n.ctl.SetInstanceReady(ctx, "api-1", false)
	if err != nil {
		t.Fatal(err)
	}
	n.view.WaitFor(ctx, seq)
	c := n.view.Snapshot()
	if got := changedNames(c.ChangesSince(a)); !slices.Equal(got, []string{"default/api", "default/web"}) {
		t.Errorf("skipped snapshots: changed %v, want the union [default/api default/web]", got)
	}
	if got := c.ChangesSince(b); !maps.Equal(got.Services, map[NamespacedName]struct{}{{"default", "api"}: {}, {"default", "web"}: {}}) {
		t.Errorf("since b: %v", changedNames(got))
	}
	if ids := c.Instances("default", "api"); len(ids) != 1 || ids[0].Value.ID != "api-1" {
		t.Errorf("instances of api: %+v", ids)
	}
	if got := b.ChangesSince(c); !got.Full {
		t.Errorf("backwards: %+v, want full", got)
	}
	loaded, err := LoadFrom(ctx, n.log)
	if err != nil {
		t.Fatal(err)
	}
	if got := loaded.ChangesSince(c); !got.Full {
		t.Errorf("a listing outside the View: %+v, want full", got)
	}
	seq, err = n.ctl.DeleteService(ctx, NamespacedName{"default", "db"})
	if err != nil {
		t.Fatal(err)
	}
	n.view.WaitFor(ctx, seq)
	if got := changedNames(n.view.Snapshot().ChangesSince(c)); !slices.Equal(got, []string{"default/db"}) {
		t.Errorf("deleted db: changed %v, want [default/db]", got)
	}
}

// TestHistoryBounds: a consumer older than the history kept gets a full
// change, one within it the union of what it missed.
func TestHistoryBounds(t *testing.T) {
	h := &history{}
	first := h.add(nil)
	for i := range historyDeltas + 10 {
		h.add(map[NamespacedName]struct{}{{"ns", string(rune('a' + i%3))}: {}})
	}
	if c := h.since(first, h.gen); !c.Full {
		t.Errorf("past the history: %+v, want full", c)
	}
	if c := h.since(h.gen-3, h.gen); c.Full || len(c.Services) != 3 {
		t.Errorf("last three deltas: %+v, want three services", c)
	}
	if c := h.since(h.gen-1, h.gen-1); c.Full || len(c.Services) != 0 {
		t.Errorf("no deltas: %+v", c)
	}
	h.add(map[NamespacedName]struct{}{allServices: {}})
	if c := h.since(h.gen-2, h.gen); !c.Full {
		t.Errorf("a network change in between: %+v, want full", c)
	}
}
