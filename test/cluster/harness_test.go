// Package e2ecluster holds the acceptance tests of the replicated
// OrderedLog (issue 15): real runed processes, one network namespace per
// node, each attached by a veth pair to a bridge in a switch namespace;
// partitions are nftables drop rules inside the node namespaces. The test
// process talks to each node's API over its unix socket and runs rune and
// dig inside the node's namespace.
//
// Running them: they need root (namespaces, nftables) and dig (make deps
// installs dnsutils); without root they skip unless RUNE_E2E is set, as in
// CI, where skipping is a failure. runed and rune are built once per run.
//
//	sudo go test ./test/cluster -count=1 -v
//	sudo go test ./test/cluster -run TestSafety -count=1 -v
//
// The safety test's random choices are logged as a seed; RUNE_TEST_SEED=N
// replays them. A failed linearizability check writes porcupine's
// visualization to a file the test names.
package e2ecluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runenet/runenet/api"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/proxy/netnstest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testkit.RemoveBinaries()
	os.Exit(code)
}

const (
	clusterPort = 7300
	bridge      = "br0"
	// dnsAddr is runed's default DNS address, inside each node's namespace.
	dnsAddr = "127.0.0.123"
	// partitionTable is the nftables table Partition adds to node namespaces.
	partitionTable = "rune_partition"
)

// Net is a test's network of runed nodes: a switch namespace holding a
// bridge, and one namespace per node on 10.77.0.0/24. Everything it starts
// is killed, and every namespace deleted, when the test ends, also when it
// fails.
type Net struct {
	sw          *netnstest.NS
	runed, rune string
	// StaleBudget is every node's --stale-budget.
	StaleBudget time.Duration
	// Flags, if set, adds a node's own flags to each of its runs (its
	// --forward mode, say, which may differ between runs).
	Flags func(*Node) []string
	Nodes []*Node
}

// NewNet creates the switch and n node namespaces; no runed runs yet.
func NewNet(t testing.TB, n int) *Net {
	t.Helper()
	netnstest.RequireRoot(t)
	if _, err := exec.LookPath("dig"); err != nil {
		t.Fatal("dig not installed (make deps installs dnsutils)")
	}
	nt := &Net{
		runed:       testkit.Binary(t, "./cmd/runed"),
		rune:        testkit.Binary(t, "./cmd/rune"),
		sw:          netnstest.New(t, "rune-cl-sw"),
		StaleBudget: 2 * time.Second,
	}
	netnstest.Bridge(t, nt.sw, bridge)
	for range n {
		nt.AddNode(t)
	}
	return nt
}

// AddNode adds a namespace for node n<i> at 10.77.0.<i> (i counting from 1).
func (nt *Net) AddNode(t testing.TB) *Node {
	t.Helper()
	i := len(nt.Nodes) + 1
	n := &Node{
		Name:    fmt.Sprintf("n%d", i),
		Addr:    netip.AddrFrom4([4]byte{10, 77, 0, byte(i)}),
		NS:      netnstest.New(t, "rune-cl"),
		DataDir: filepath.Join(t.TempDir(), "data"),
		net:     nt,
	}
	// Nothing listens there: runed's upstream forwarding stays in the namespace.
	n.NS.ResolvConf(t, "127.0.0.1")
	netnstest.Attach(t, nt.sw, bridge, n.NS, n.Addr.String()+"/24")
	sock := "unix://" + filepath.Join(n.DataDir, "runed.sock")
	var err error
	if n.API, err = api.NewClient(sock, ""); err != nil {
		t.Fatal(err)
	}
	if n.LinAPI, err = api.NewClient(sock, "", api.LinearizableReads()); err != nil {
		t.Fatal(err)
	}
	// Registered after the namespace's own cleanup, so it runs first.
	t.Cleanup(func() {
		n.Kill(t)
		if t.Failed() {
			t.Logf("%s's runed output (last 16 KiB):\n%s", n.Name, tail(n.log.String(), 16<<10))
		}
	})
	nt.Nodes = append(nt.Nodes, n)
	return n
}

// Node is one runed's namespace, address and data directory, and the
// process running there, if any.
type Node struct {
	Name    string
	Addr    netip.Addr
	NS      *netnstest.NS
	DataDir string
	// API talks to the node's unix socket; LinAPI's reads are linearizable.
	API, LinAPI *api.Client

	net  *Net
	log  testkit.SyncBuffer // every run's output, one after another
	mu   sync.Mutex
	proc *proc // the current run, nil before the first
}

type proc struct {
	cmd  *exec.Cmd
	out  *testkit.SyncBuffer
	done chan struct{} // closed once it exited; err is then set
	err  error
}

// ClusterAddr is the node's --cluster-addr.
func (n *Node) ClusterAddr() string { return netip.AddrPortFrom(n.Addr, clusterPort).String() }

// Start runs runed in the node's namespace with its name, data directory,
// cluster address and the net's stale budget, plus extra flags (--bootstrap,
// --join ...); it does not wait for it to serve.
func (n *Node) Start(t testing.TB, extra ...string) {
	t.Helper()
	n.start(t, append([]string{"--cluster-addr", n.ClusterAddr()}, extra...))
}

// StartSingle runs runed as a single-node log (Badger), without a cluster
// address.
func (n *Node) StartSingle(t testing.TB) {
	t.Helper()
	n.start(t, nil)
}

func (n *Node) start(t testing.TB, extra []string) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && !n.proc.exited() {
		t.Fatalf("%s: runed is already running (pid %d)", n.Name, n.proc.cmd.Process.Pid)
	}
	args := append([]string{n.net.runed, "--node-name", n.Name, "--data-dir", n.DataDir,
		"--stale-budget", n.net.StaleBudget.String()}, extra...)
	if n.net.Flags != nil {
		args = append(args, n.net.Flags(n)...)
	}
	p := &proc{cmd: n.NS.Command(args...), out: &testkit.SyncBuffer{}, done: make(chan struct{})}
	fmt.Fprintf(&n.log, "=== %s %s\n", time.Now().Format("15:04:05.000"), strings.Join(args[1:], " "))
	w := multiWriter{p.out, &n.log}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: starting runed: %v", n.Name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	n.proc = p
}

type multiWriter []*testkit.SyncBuffer

func (m multiWriter) Write(b []byte) (int, error) {
	for _, w := range m {
		w.Write(b)
	}
	return len(b), nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (n *Node) current() *proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// Running says whether runed runs on the node.
func (n *Node) Running() bool {
	p := n.current()
	return p != nil && !p.exited()
}

// Kill SIGKILLs the node's runed by its pid (ip netns exec execs runed in
// place, so the pid is runed's) and waits for it to exit.
func (n *Node) Kill(t testing.TB) { n.signal(t, syscall.SIGKILL) }

// Stop ends the node's runed with SIGTERM and waits for it to exit.
func (n *Node) Stop(t testing.TB) { n.signal(t, syscall.SIGTERM) }

func (n *Node) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	p := n.current()
	if p == nil || p.exited() {
		return
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s: runed did not exit within 15s of %v; killed", n.Name, sig)
	}
}

// Exit waits for runed to end by itself and returns its exit error and
// that run's output; it fails the test if runed still runs after timeout.
func (n *Node) Exit(t testing.TB, timeout time.Duration) (error, string) {
	t.Helper()
	p := n.current()
	select {
	case <-p.done:
		return p.err, p.out.String()
	case <-time.After(timeout):
		t.Fatalf("%s: runed still runs %v after start; want it to exit. Output:\n%s", n.Name, timeout, p.out.String())
		return nil, ""
	}
}

// Restart starts runed again on its data directory (no --bootstrap, no
// token) and waits for it to serve as a cluster member.
func (n *Node) Restart(t testing.TB) {
	t.Helper()
	n.Start(t)
	n.WaitUp(t, 30*time.Second)
}

// WaitUp waits until the node answers its API as a member that knows a
// leader (and has loaded its View: status reads it).
func (n *Node) WaitUp(t testing.TB, timeout time.Duration) {
	t.Helper()
	var last string
	ok := waitUntil(timeout, func() bool {
		if p := n.current(); p == nil || p.exited() {
			last = "runed is not running"
			return false
		}
		st, err := n.status()
		switch {
		case err != nil:
			last = err.Error()
		case st.Cluster == nil || st.Cluster.Backend != api.BackendRaft:
			last = fmt.Sprintf("status shows no Raft cluster: %+v", st.Cluster)
		case st.Cluster.Leader == "":
			last = "knows no leader (state " + st.Cluster.State + ")"
		default:
			return true
		}
		return false
	})
	if !ok {
		out := ""
		if p := n.current(); p != nil {
			out = tail(p.out.String(), 8<<10)
		}
		t.Fatalf("%s not up within %v: %s\nruned output:\n%s", n.Name, timeout, last, out)
	}
}

func (n *Node) status() (*api.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return n.API.Status(ctx)
}

// CLI runs rune inside the node's namespace against its API.
func (n *Node) CLI(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.TryCLI(args...)
	if err != nil {
		t.Fatalf("%s: rune %s: %v\n%s", n.Name, strings.Join(args, " "), err, out)
	}
	return out
}

// TryCLI is CLI for a command that may fail: its stdout, and an error
// holding stderr.
func (n *Node) TryCLI(args ...string) (string, error) {
	cmd := n.NS.Command(append([]string{n.net.rune, "--api", "unix://" + filepath.Join(n.DataDir, "runed.sock")}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Dig asks the node's DNS server, from inside its namespace, with dig.
func (n *Node) Dig(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.TryDig(args...)
	if err != nil {
		t.Fatalf("%s: dig %s: %v\n%s", n.Name, strings.Join(args, " "), err, out)
	}
	return out
}

// TryDig is Dig for a goroutine other than the test's: dig's output and error.
func (n *Node) TryDig(args ...string) (string, error) {
	out, err := n.NS.Command(append([]string{"dig", "@" + dnsAddr, "+tries=1", "+time=2"}, args...)...).CombinedOutput()
	return string(out), err
}

// Cast casts a YAML service document through rune on the node.
func (n *Node) Cast(t testing.TB, yaml string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "svc.yaml")
	if err := os.WriteFile(f, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return n.CLI(t, "cast", f)
}

// Running is the net's nodes whose runed runs.
func (nt *Net) Running() []*Node {
	var out []*Node
	for _, n := range nt.Nodes {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// Leader waits until a running node says it leads and every other running
// node that knows a leader names it, and returns it.
func (nt *Net) Leader(t testing.TB, timeout time.Duration) *Node {
	t.Helper()
	var leader *Node
	if !waitUntil(timeout, func() bool {
		leader = nil
		names := map[string]bool{}
		for _, n := range nt.Running() {
			st, err := n.status()
			if err != nil || st.Cluster == nil {
				continue
			}
			if st.Cluster.State == "leader" {
				leader = n
			}
			if st.Cluster.Leader != "" {
				names[st.Cluster.Leader] = true
			}
		}
		return leader != nil && len(names) == 1 && names[leader.Name]
	}) {
		t.Fatalf("no leader all running nodes agree on within %v", timeout)
	}
	return leader
}

// Partition cuts side off from the other nodes: inside every node's
// namespace, nftables drops packets to and from the nodes across the cut.
func (nt *Net) Partition(t testing.TB, side ...*Node) {
	t.Helper()
	in := map[*Node]bool{}
	for _, n := range side {
		in[n] = true
	}
	for _, n := range nt.Nodes {
		var across []string
		for _, o := range nt.Nodes {
			if in[o] != in[n] {
				across = append(across, o.Addr.String())
			}
		}
		if len(across) == 0 {
			continue
		}
		set := strings.Join(across, ", ")
		n.nft(t, fmt.Sprintf(`table inet %[1]s {
	chain in { type filter hook input priority -300; ip saddr { %[2]s } drop; }
	chain out { type filter hook output priority -300; ip daddr { %[2]s } drop; }
}
`, partitionTable, set))
	}
}

// Heal removes every node's partition rules.
func (nt *Net) Heal(t testing.TB) {
	t.Helper()
	for _, n := range nt.Nodes {
		if n.NS.Command("nft", "list", "table", "inet", partitionTable).Run() == nil {
			n.nft(t, "delete table inet "+partitionTable+"\n")
		}
	}
}

func (n *Node) nft(t testing.TB, script string) {
	t.Helper()
	cmd := n.NS.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: nft -f: %v\n%s\n%s", n.Name, err, out, script)
	}
}

// waitUntil polls cond every 50ms until it holds or timeout passes.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// isDialError says an API call never reached runed (nothing listened):
// whatever it asked was certainly not done.
func isDialError(err error) bool {
	var ue *api.UnreachableError
	return errors.As(err, &ue) && (errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT))
}
