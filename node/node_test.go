package node

import (
	"strings"
	"testing"
)

func TestAcquireShareAttachRelease(t *testing.T) {
	dir := t.TempDir()
	if _, err := Attach(""); err == nil || !strings.Contains(err.Error(), "`rune` block") {
		t.Fatalf("attach with nothing open: %v", err)
	}
	cfg := Config{DataDir: dir, NodeName: "n1"}
	a, err := Acquire(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A reload acquires again before releasing: same runtime, not a second store.
	b, err := Acquire(cfg)
	if err != nil || b != a {
		t.Fatalf("second acquire: %v (same runtime: %v)", err, b == a)
	}
	if _, err := Acquire(Config{DataDir: dir, NodeName: "n1", ClusterCIDR: "10.200.0.0/16"}); err == nil || !strings.Contains(err.Error(), "different settings") {
		t.Fatalf("acquire with other settings: %v", err)
	}
	c, err := Attach(dir)
	if err != nil || c != a {
		t.Fatalf("attach: %v", err)
	}
	for _, r := range []*Runtime{a, b, c} {
		if err := r.Release(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Attach(""); err == nil {
		t.Fatal("runtime still open after the last release")
	}
	// Closed for real: the store can be opened again.
	d, err := Acquire(cfg)
	if err != nil {
		t.Fatalf("reopen after close: %v", err)
	}
	d.Release()
}

func TestBadConfigIsRefused(t *testing.T) {
	if _, err := Acquire(Config{DataDir: t.TempDir(), ClusterCIDR: "8.8.8.0/24"}); err == nil || !strings.Contains(err.Error(), "not private") {
		t.Fatalf("public CIDR: %v", err)
	}
	if _, err := Acquire(Config{}); err == nil {
		t.Fatal("no data dir accepted")
	}
}
