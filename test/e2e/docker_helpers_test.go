package e2e

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/dockersrc"
	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/test/dockerimg"
)

// dockerRequire skips when no Docker Engine answers, unless RUNE_E2E is set
// (CI), where a missing Engine is a failure.
func dockerRequire(t *testing.T) {
	t.Helper()
	out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err == nil {
		return
	}
	if os.Getenv("RUNE_E2E") != "" {
		t.Fatalf("RUNE_E2E is set but the Docker Engine is not reachable: %v\n%s", err, out)
	}
	t.Skipf("no Docker Engine reachable (set RUNE_E2E to make this a failure): %v", err)
}

// docker runs the docker CLI and returns its trimmed output.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// dockerEnv is what one test creates in Docker: an image and a network,
// removed (with every container started through it) when the test ends.
type dockerEnv struct {
	t       *testing.T
	image   string
	network string
}

func newDockerEnv(t *testing.T) *dockerEnv {
	dockerRequire(t)
	e := &dockerEnv{t: t, image: dockerimg.Build(t), network: dockerimg.RandomName("rune-e2e-net")}
	docker(t, "network", "create", e.network)
	// Registered after the image's cleanup, so it runs first: containers,
	// then the network, then the image.
	t.Cleanup(func() { exec.Command("docker", "network", "rm", e.network).Run() })
	return e
}

// run starts a container of the test image on the env's network and
// returns its id; extra goes before the image (labels, --no-healthcheck).
func (e *dockerEnv) run(name string, extra ...string) string {
	e.t.Helper()
	args := append([]string{"run", "-d", "--name", name, "--network", e.network}, extra...)
	id := docker(e.t, append(args, e.image)...)
	e.t.Cleanup(func() { exec.Command("docker", "rm", "-f", id).Run() })
	return id
}

// ip is a container's address on the env's network.
func (e *dockerEnv) ip(id string) netip.Addr {
	e.t.Helper()
	return netip.MustParseAddr(docker(e.t, "inspect", "-f", `{{(index .NetworkSettings.Networks "`+e.network+`").IPAddress}}`, id))
}

// dockerNode is the control plane of one runed, as far as the Docker source
// needs it: a Badger log, its View and controller, and the source.
type dockerNode struct {
	log  *orderedlog.BadgerLog
	view *cluster.View
	ctl  *cluster.Controller
	stop func()
}

// startDockerNode opens (or reopens, as a restarted runed does) the store in
// dir and runs a View and a Docker source over it.
func startDockerNode(t *testing.T, dir, node string) *dockerNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lg, err := orderedlog.OpenBadger(dir, orderedlog.BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.Bootstrap(ctx, lg, netip.MustParsePrefix(dpCIDR)); err != nil {
		t.Fatal(err)
	}
	n := &dockerNode{log: lg, view: cluster.NewView(lg, cluster.ViewOptions{})}
	viewDone, srcDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(viewDone); n.view.Run(ctx) }()
	n.ctl = cluster.NewController(lg, n.view, cluster.ControllerOptions{})
	src, err := dockersrc.New(dockersrc.Config{Node: node, Controller: n.ctl, View: n.view})
	if err != nil {
		t.Fatal(err)
	}
	go func() { defer close(srcDone); src.Run(ctx) }()
	var stopped bool
	n.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-srcDone
		<-viewDone
		lg.Close()
	}
	t.Cleanup(n.stop)
	return n
}

// dockerWait polls the View until cond holds on its snapshot.
func dockerWait(t *testing.T, n *dockerNode, what string, cond func(*cluster.Snapshot) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond(n.view.Snapshot()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; instances: %+v", what, dockerInstances(n.view.Snapshot(), "", ""))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dockerInstances is a service's instances (all services for ""), by id.
func dockerInstances(s *cluster.Snapshot, ns, service string) map[string]cluster.Instance {
	out := map[string]cluster.Instance{}
	for _, e := range s.Instances(ns, service) {
		out[e.Value.ID] = *e.Value
	}
	return out
}

func dockerInstanceID(containerID string) string { return dockersrc.IDPrefix + containerID[:12] }
