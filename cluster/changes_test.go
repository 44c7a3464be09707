package cluster

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/runenet/runenet/orderedlog"
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
	first := h.add(nil, nil)
	for i := range historyDeltas + 10 {
		h.add(map[NamespacedName]struct{}{{"ns", string(rune('a' + i%3))}: {}}, nil)
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
	h.add(map[NamespacedName]struct{}{allServices: {}}, nil)
	if c := h.since(h.gen-2, h.gen); !c.Full {
		t.Errorf("a network change in between: %+v, want full", c)
	}
}

// compactingSource is a log whose live watch can be told that its history
// was compacted, as a watcher that fell behind compaction is.
type compactingSource struct {
	orderedlog.Follower
	compact chan struct{}
}

func (c *compactingSource) Watch(ctx context.Context, from uint64) (<-chan orderedlog.Event, error) {
	in, err := c.Follower.Watch(ctx, from)
	if err != nil {
		return nil, err
	}
	out := make(chan orderedlog.Event)
	go func() {
		defer close(out)
		for {
			select {
			case ev, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			case <-c.compact:
				select {
				case out <- orderedlog.Event{Err: orderedlog.ErrCompacted}:
				case <-ctx.Done():
				}
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// TestChangesAfterRelist: a View that re-lists after compaction publishes a
// full change, and tracks changes again from there.
func TestChangesAfterRelist(t *testing.T) {
	lg := openLog(t, t.TempDir())
	ctx := context.Background()
	if err := Bootstrap(ctx, lg, netip.MustParsePrefix("10.96.0.0/16")); err != nil {
		t.Fatal(err)
	}
	src := &compactingSource{Follower: lg, compact: make(chan struct{})}
	n := &testNode{log: lg, view: NewView(src, ViewOptions{})}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); n.view.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	n.ctl = NewController(lg, n.view, ControllerOptions{})
	cast(t, n, svcYAML("api", "default", ""))
	a := n.view.Snapshot()
	changed := n.view.Changed()
	src.compact <- struct{}{}
	<-changed
	relisted := n.view.Snapshot()
	if c := relisted.ChangesSince(a); !c.Full {
		t.Fatalf("after a re-list: %+v, want a full change", c)
	}
	seq, err := n.ctl.RegisterInstance(ctx, Instance{ID: "api-1", Service: "api", Namespace: "default", Node: "n1", IP: netip.MustParseAddr("10.1.0.1"), Ready: true})
	if err != nil {
		t.Fatal(err)
	}
	n.view.WaitFor(ctx, seq)
	if got := changedNames(n.view.Snapshot().ChangesSince(relisted)); !slices.Equal(got, []string{"default/api"}) {
		t.Errorf("a change after the re-list: %v, want [default/api]", got)
	}
	if c := n.view.Snapshot().ChangesSince(a); !c.Full {
		t.Errorf("across the re-list: %+v, want a full change", c)
	}
}
