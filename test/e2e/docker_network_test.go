package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/dockersrc"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/orderedlog/badger"
	"github.com/runenet/runenet/test/dockerimg"
)

// TestDockerNodeNetwork: against the real Engine, the Docker source
// creates the node's bridge network on its subnet, adopts one that exists
// on that subnet, and refuses (leaving it alone, saying what to do) one on
// another subnet. Networks are named rune-e2e-nodenet-<random> and removed.
func TestDockerNodeNetwork(t *testing.T) {
	dockerRequire(t)
	c := testkit.NewCluster(t, dpCIDR, badger.Options{}, cluster.ViewOptions{})
	b := make([]byte, 1)
	rand.Read(b)
	subnet := netip.MustParsePrefix(fmt.Sprintf("10.251.%d.0/24", b[0]))
	other := netip.MustParsePrefix(fmt.Sprintf("10.252.%d.0/24", b[0]))

	// run starts a source keeping network name on subnet and returns its
	// log once it has reconciled (which follows keeping the network).
	run := func(name string, subnet netip.Prefix) string {
		t.Helper()
		var logs testkit.SyncBuffer
		src, err := dockersrc.New(dockersrc.Config{Node: "n1", Controller: c.Ctl, View: c.View, Subnet: subnet, Network: name,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); src.Run(ctx) }()
		defer func() { cancel(); <-done }()
		before := testkit.Metric(t, "rune_docker_reconcile_total", nil)
		testkit.Eventually(t, 20*time.Second, "the source to reconcile", func() bool {
			return testkit.Metric(t, "rune_docker_reconcile_total", nil) > before
		})
		return logs.String()
	}
	network := func(name string) (id, subnet string) {
		t.Helper()
		out := docker(t, "network", "inspect", name, "--format", "{{.ID}} {{range .IPAM.Config}}{{.Subnet}}{{end}}")
		id, subnet, _ = strings.Cut(out, " ")
		return id, subnet
	}
	fresh := func() string {
		name := dockerimg.RandomName("rune-e2e-nodenet")
		t.Cleanup(func() { exec.Command("docker", "network", "rm", name).Run() })
		return name
	}

	created := fresh()
	if log := run(created, subnet); strings.Contains(log, "level=ERROR") {
		t.Fatalf("creating the network logged an error:\n%s", log)
	}
	id, got := network(created)
	if got != subnet.String() {
		t.Fatalf("network %s has subnet %q, want %s", created, got, subnet)
	}
	if gw := docker(t, "network", "inspect", created, "--format", "{{range .IPAM.Config}}{{.Gateway}}{{end}}"); gw != subnet.Addr().Next().String() {
		t.Errorf("gateway %s, want the subnet's first address %s", gw, subnet.Addr().Next())
	}
	// A restart adopts it rather than making another.
	if log := run(created, subnet); strings.Contains(log, "level=ERROR") || strings.Contains(log, "created the docker network") {
		t.Errorf("the second start did not simply adopt the network:\n%s", log)
	}
	if again, _ := network(created); again != id {
		t.Errorf("network re-created: id %s, was %s", again, id)
	}
	docker(t, "network", "rm", created)

	// Someone's network of that name on another subnet is refused and left alone.
	foreign := fresh()
	docker(t, "network", "create", "--subnet", other.String(), foreign)
	fid, _ := network(foreign)
	log := run(foreign, subnet)
	want := fmt.Sprintf("exists with driver bridge and subnets [%s], but this node's container subnet is %s", other, subnet)
	if !strings.Contains(log, want) || !strings.Contains(log, "docker network rm "+foreign) || !strings.Contains(log, foreign) {
		t.Errorf("a network on another subnet: the log does not say %q and what to do:\n%s", want, log)
	}
	if id, got := network(foreign); id != fid || got != other.String() {
		t.Errorf("the foreign network was changed: id %s subnet %s", id, got)
	}
}
