package e2e

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runenet/runenet/api"
	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/dockersrc"
	"github.com/runenet/runenet/orderedlog/badger"
	"github.com/runenet/runenet/test/dockerimg"

	"github.com/runenet/runenet/internal/testkit"
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
	return e.runOn(e.network, name, extra...)
}

// runOn is run on another network (e.g. Docker's default "bridge").
func (e *dockerEnv) runOn(network, name string, extra ...string) string {
	e.t.Helper()
	args := append([]string{"run", "-d", "--name", name, "--network", network}, extra...)
	id := docker(e.t, append(args, e.image)...)
	e.t.Cleanup(func() { exec.Command("docker", "rm", "-f", id).Run() })
	return id
}

// ip is a container's address on the env's network.
func (e *dockerEnv) ip(id string) netip.Addr {
	e.t.Helper()
	return e.ipOn(id, e.network)
}

// dockerNode is the control plane of one runed, as far as the Docker source
// needs it: a Badger log, its View and controller, and the source.
type dockerNode struct {
	log  *badger.Log
	view *cluster.View
	ctl  *cluster.Controller
	stop func()
}

// startDockerNode opens (or reopens, as a restarted runed does) the store in
// dir and runs a View and a Docker source over it.
func startDockerNode(t *testing.T, dir, node string) *dockerNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lg, err := badger.Open(dir, badger.Options{})
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
func dockerWait(t *testing.T, view *cluster.View, what string, cond func(*cluster.Snapshot) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond(view.Snapshot()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; instances: %+v", what, dockerInstances(view.Snapshot(), "", ""))
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

// runIn runs a command inside a container's network namespace, from the
// host (so with the host's binaries and root's privileges there), and
// returns its output.
func (e *dockerEnv) runIn(id string, args ...string) string {
	e.t.Helper()
	pid := docker(e.t, "inspect", "-f", "{{.State.Pid}}", id)
	out, err := exec.Command("nsenter", append([]string{"-t", pid, "-n", "--"}, args...)...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("in container %.12s: %s: %v\n%s", id, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ipOn is a container's address on network.
func (e *dockerEnv) ipOn(id, network string) netip.Addr {
	e.t.Helper()
	return netip.MustParseAddr(docker(e.t, "inspect", "-f", `{{(index .NetworkSettings.Networks "`+network+`").IPAddress}}`, id))
}

// dockerRuned is runed inside the network namespace of a "node" container
// the test started: its nftables interception, its proxy and its DNS
// listeners exist only there. Its store and API socket are on the host's
// file system (only the network namespace is entered).
type dockerRuned struct {
	t        *testing.T
	pid      string
	bin      string
	corefile string
	client   *api.Client
	cmd      *exec.Cmd
	log      *testkit.SyncBuffer
}

// startDockerRuned renders runed's own Corefile from its flags (flags plus a
// DNS listener on the node container's address on each of its networks).
func startDockerRuned(t *testing.T, env *dockerEnv, node string, flags []string, dnsAddrs ...netip.Addr) *dockerRuned {
	t.Helper()
	dir := t.TempDir()
	r := &dockerRuned{t: t, bin: testkit.Binary(t, "./cmd/runed"), corefile: filepath.Join(dir, "Corefile"),
		pid: docker(t, "inspect", "-f", "{{.State.Pid}}", node)}
	data := filepath.Join(dir, "data")
	args := append([]string{"--print-corefile", "--data-dir", data, "--node-name", "node1", "--docker",
		"--dns-addr", dnsAddrs[0].String() + ":53"}, flags...)
	for _, a := range dnsAddrs[1:] {
		args = append(args, "--dns-bind", a.String()) // one listener per container network
	}
	out, err := exec.Command(r.bin, args...).Output()
	if err != nil {
		t.Fatalf("runed --print-corefile: %v", err)
	}
	corefile := string(out)
	// runed keeps a bridge network on its subnet: one of the test's own,
	// removed after runed stops.
	network := dockerimg.RandomName("rune-e2e-node")
	t.Cleanup(func() { exec.Command("docker", "network", "rm", network).Run() })
	for _, edit := range []struct{ old, new string }{
		// No traffic leaves the test's containers: no upstream, no loop probe.
		{"\tforward . /etc/resolv.conf\n", ""},
		{"\tloop\n", ""},
		{"\t\tdocker\n", "\t\tdocker\n\t\tdocker_network " + network + "\n"},
	} {
		if !strings.Contains(corefile, edit.old) {
			t.Fatalf("rendered Corefile has no %q:\n%s", edit.old, corefile)
		}
		corefile = strings.ReplaceAll(corefile, edit.old, edit.new)
	}
	if err := os.WriteFile(r.corefile, []byte(corefile), 0o644); err != nil {
		t.Fatal(err)
	}
	if r.client, err = api.NewClient("unix://"+filepath.Join(data, "runed.sock"), ""); err != nil {
		t.Fatal(err)
	}
	r.start()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("runed output:\n%s", r.log.String())
		}
	})
	return r
}

// start runs runed and waits until it reports its data path ready.
func (r *dockerRuned) start() {
	r.t.Helper()
	r.log = &testkit.SyncBuffer{}
	r.cmd = exec.Command("nsenter", "-t", r.pid, "-n", "--", r.bin, "-conf", r.corefile)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := r.client.Status(ctx)
		cancel()
		if err == nil && st.Ready {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("runed not ready after 30s (status %+v, %v):\n%s", st, err, r.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends runed with SIGTERM (it removes its nftables tables) and waits.
func (r *dockerRuned) stop() {
	if r.cmd == nil || r.cmd.ProcessState != nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-done
	}
}

// followRuned runs a View over runed's watch API until the test ends: the
// test waits on what runed itself sees.
func followRuned(t *testing.T, c *api.Client) *cluster.View {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	view := cluster.NewView(c, cluster.ViewOptions{RetryBackoff: 100 * time.Millisecond})
	done := make(chan struct{})
	go func() { defer close(done); view.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return view
}

// dockerGet runs testd get in a container and parses its report.
func dockerGet(t *testing.T, client string, args ...string) []dockerRequest {
	t.Helper()
	return dockerParseGet(t, docker(t, append([]string{"exec", client, dockerimg.Binary, "get"}, args...)...))
}

func dockerParseGet(t *testing.T, out string) []dockerRequest {
	t.Helper()
	var reqs []dockerRequest
	for line := range strings.Lines(out) {
		f := strings.SplitN(strings.TrimSpace(line), " ", 3)
		if len(f) != 3 {
			t.Fatalf("testd get printed %q", line)
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			t.Fatalf("testd get printed %q", line)
		}
		reqs = append(reqs, dockerRequest{sent: time.Unix(0, ns), ok: f[1] == "OK", answer: f[2]})
	}
	return reqs
}

// dockerRequest is one request of testd get: answer is the backend's
// hostname (its short container id) or the error.
type dockerRequest struct {
	sent   time.Time
	ok     bool
	answer string
}

// dockerAnswers counts successful answers by backend and lists failures.
func dockerAnswers(reqs []dockerRequest) (map[string]int, []string) {
	names := map[string]int{}
	var errs []string
	for _, r := range reqs {
		if r.ok {
			names[r.answer]++
		} else {
			errs = append(errs, r.answer)
		}
	}
	return names, errs
}
