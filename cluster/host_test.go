package cluster

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/runenet/runenet/orderedlog"
)

func exposing(host string) string { return "  expose:\n    host: " + host + "\n" }

// Two services in one cast exposing one host: refused before anything is
// written, naming both and where each sets it.
func TestCastRefusesOneHostTwiceInACast(t *testing.T) {
	n := newNode(t, "10.96.0.0/16")
	tail := n.log.Tail()
	_, _, err := n.ctl.Cast(context.Background(), []SourceFile{
		svcYAML("shop", "default", exposing("shop.example.com")),
		svcYAML("shop2", "web", exposing("shop.example.com")),
	})
	if KindOf(err) != KindInvalid {
		t.Fatalf("got %v, want an invalid-spec error", err)
	}
	mustSay(t, err, "shop2.yaml:9:11: service.expose.host", `"shop.example.com" of service web/shop2 is already exposed by service default/shop (shop.yaml:9:11)`)
	if n.log.Tail() != tail {
		t.Fatal("a refused cast wrote to the log")
	}
}

// A host another stored service exposes: the whole cast is refused with an
// error naming both services; nothing of it is written.
func TestCastRefusesAHostAnotherServiceExposes(t *testing.T) {
	n := newNode(t, "10.96.0.0/16")
	cast(t, n, svcYAML("shop", "default", exposing("shop.example.com")))
	tail := n.log.Tail()
	// "aaa" sorts before "shop": by name order it would have taken the host.
	_, _, err := n.ctl.Cast(context.Background(), []SourceFile{
		svcYAML("other", "default", ""),
		svcYAML("aaa", "default", exposing("shop.example.com")),
	})
	if KindOf(err) != KindConflict {
		t.Fatalf("got %v, want a conflict", err)
	}
	mustSay(t, err, "service default/aaa: expose.host shop.example.com is already exposed by service default/shop")
	if n.log.Tail() != tail {
		t.Fatal("a refused cast wrote to the log")
	}
	if _, ok := n.view.Snapshot().Service(NamespacedName{"default", "other"}); ok {
		t.Fatal("a service of the refused cast was written")
	}

	// Re-casting the holder, and handing the host over in one cast, work.
	cast(t, n, svcYAML("shop", "default", exposing("shop.example.com")))
	cast(t, n, svcYAML("shop", "default", exposing("old.example.com")), svcYAML("aaa", "default", exposing("shop.example.com")))
	wantClaims(t, n, "shop.example.com", NamespacedName{"default", "aaa"})
	wantClaims(t, n, "old.example.com", NamespacedName{"default", "shop"})
	// A deleted service's host is free again.
	if _, err := n.ctl.DeleteService(context.Background(), NamespacedName{"default", "aaa"}); err != nil {
		t.Fatal(err)
	}
	wantClaims(t, n, "shop.example.com")
	cast(t, n, svcYAML("zzz", "default", exposing("shop.example.com")))
}

// A store written before casts checked may hold two services on one host:
// the View lists both in name order (the ingress routes to the first), either
// can still be cast, and a third cannot join them.
func TestTwoClaimsInAnOlderStore(t *testing.T) {
	n := newNode(t, "10.96.0.0/16")
	cast(t, n, svcYAML("b", "default", exposing("dup.example.com")), svcYAML("c", "default", ""))
	// Written as an older runed would have: c takes b's host.
	cur, _ := n.view.Snapshot().Service(NamespacedName{"default", "c"})
	rec := *cur.Value
	rec.Spec.Expose = &Expose{Host: "dup.example.com", Port: "http"}
	seq, err := n.log.Propose(context.Background(), []orderedlog.Op{orderedlog.Put(serviceKey(NamespacedName{"default", "c"}), rec.encode())})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.view.WaitFor(context.Background(), seq); err != nil {
		t.Fatal(err)
	}
	wantClaims(t, n, "dup.example.com", NamespacedName{"default", "b"}, NamespacedName{"default", "c"})
	cast(t, n, svcYAML("c", "default", exposing("dup.example.com")))
	cast(t, n, svcYAML("b", "default", exposing("dup.example.com")))
	_, _, err = n.ctl.Cast(context.Background(), []SourceFile{svcYAML("a", "default", exposing("dup.example.com"))})
	mustSay(t, err, "service default/a: expose.host dup.example.com is already exposed by service default/b")
	// Moving one away leaves the other holding it alone.
	cast(t, n, svcYAML("b", "default", ""))
	wantClaims(t, n, "dup.example.com", NamespacedName{"default", "c"})
}

// wantClaims checks the View's claims on host; casts return once the local
// View has applied them.
func wantClaims(t *testing.T, n *testNode, host string, want ...NamespacedName) {
	t.Helper()
	if got := n.view.Snapshot().HostClaims(host); !slices.Equal(got, want) {
		t.Errorf("claims on %s: %v, want %v", host, got, want)
	}
}

func mustSay(t *testing.T, err error, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v, want it to say %q", err, w)
		}
	}
}
