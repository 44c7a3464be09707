package node

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runenet/runenet/cluster"
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

func TestNodeNameFromHostName(t *testing.T) {
	for host, want := range map[string]string{
		"web-01":                    "web-01",
		"Web-01.Example.COM":        "web-01",
		"node1.cluster.internal":    "node1",
		"UPPER":                     "upper",
		"trailing-dot.example.org.": "trailing-dot",
	} {
		if got := nodeNameFromHost(host); got != want {
			t.Errorf("host %q: node name %q, want %q", host, got, want)
		}
	}
}

// A node name that instances could not name (explicit, or a host name that
// does not normalize into a DNS label) stops the node before anything opens.
func TestBadNodeNameIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for _, name := range []string{"Node_1", "web.example.com", "-x"} {
		_, err := Acquire(Config{DataDir: dir, NodeName: name})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("node name %q", name)) || !strings.Contains(err.Error(), "--node-name") {
			t.Errorf("node name %q: %v, want a refusal naming it and --node-name", name, err)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a refused node created its data directory (%v)", err)
	}
	c := Config{DataDir: dir}
	if err := c.setDefaults(); err != nil {
		t.Fatalf("default node name from this host: %v", err)
	}
	if p := cluster.NodeNameProblem(c.NodeName); p != "" {
		t.Fatalf("the default node name %q %s", c.NodeName, p)
	}
}
