package ingress

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/pebbletest"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/orderedlog/raft"
)

// An edge node in a process of its own, on a replicated (Raft) log shared
// with this test process: nothing certmagic keeps in memory (the challenges
// it started, its locks) is shared, only the log is, as between real
// nodes. And killing it is a real crash (SIGKILL).

const edgeChildEnv = "RUNE_TEST_EDGE_CHILD"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(edgeChildEnv); cfg != "" {
		flag.Parse() // raft.TestOptions asks testing.Verbose
		if err := runEdgeChild(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "edge child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// edgeChildConfig is what the child process gets in edgeChildEnv.
type edgeChildConfig struct {
	Node, RaftID, RaftAddr, Dir string
	CAPEM, CertPEM, KeyPEM      []byte
	MinSeq                      uint64 // wait for the log to reach it before serving
	ACME                        ACMEOptions
}

// runEdgeChild runs a Raft node and an edge ingress on it until killed,
// printing "ready HTTPADDR HTTPSADDR" once serving.
func runEdgeChild(raw string) error {
	var cfg edgeChildConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		return err
	}
	opts := raft.TestOptions()
	tr, err := raft.ListenTLS(cfg.RaftAddr, raft.TLSConfig{CAPEM: cfg.CAPEM, CertPEM: cfg.CertPEM, KeyPEM: cfg.KeyPEM}, opts.Logger)
	if err != nil {
		return err
	}
	opts.NodeID, opts.Dir, opts.Transport = cfg.RaftID, cfg.Dir, tr
	lg, err := raft.Open(opts)
	if err != nil {
		return err
	}
	for lg.Tail() < cfg.MinSeq {
		time.Sleep(10 * time.Millisecond) // the parent kills us if this never ends
	}
	view := cluster.NewView(lg, cluster.ViewOptions{})
	go view.Run(context.Background())
	ing, err := New(lg, view, Options{HTTPAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", NodeName: cfg.Node, ACME: cfg.ACME})
	if err != nil {
		return err
	}
	if err := ing.Start(); err != nil {
		return err
	}
	fmt.Printf("ready %s %s\n", ing.HTTPAddr(), ing.HTTPSAddr())
	select {}
}

// raftCluster is two Raft voters in this process, on mutual-TLS loopback
// transports, and the CA that can issue a third (child) node's certificate.
type raftCluster struct {
	ca    *raft.CA
	nodes []*raft.Log
}

func newRaftCluster(t *testing.T) *raftCluster {
	t.Helper()
	ca, err := raft.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	c := &raftCluster{ca: ca}
	for i := range 2 {
		opts := raft.TestOptions()
		opts.NodeID, opts.Dir, opts.Bootstrap = fmt.Sprintf("node-%d", i), t.TempDir(), i == 0
		opts.Transport = c.transport(t, opts.NodeID, "127.0.0.1:0")
		lg, err := raft.Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { lg.Close() })
		c.nodes = append(c.nodes, lg)
		if i == 0 {
			waitFor(t, 30*time.Second, "node-0 to lead", func() bool { return lg.State() == "Leader" })
		} else {
			c.addVoter(t, opts.NodeID, string(opts.Transport.Raft().LocalAddr()))
		}
	}
	return c
}

func (c *raftCluster) transport(t *testing.T, id, addr string) raft.Transport {
	t.Helper()
	cert, key, err := c.ca.Issue(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := raft.ListenTLS(addr, raft.TLSConfig{CAPEM: c.ca.CertPEM, CertPEM: cert, KeyPEM: key}, raft.QuietLogger())
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// addVoter adds a voter through node-0, which leads (nothing here moves
// leadership but a loaded machine's election; retried then).
func (c *raftCluster) addVoter(t *testing.T, id, addr string) {
	t.Helper()
	waitFor(t, 30*time.Second, "adding "+id, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, n := range c.nodes {
			if n.State() == "Leader" {
				return n.AddVoter(ctx, id, addr) == nil
			}
		}
		return false
	})
}

// edgeChild is an edge node in a child process.
type edgeChild struct {
	name      string
	cmd       *exec.Cmd
	httpsAddr string
}

// startEdgeChild starts edge node name in a child process, as the third
// Raft voter of c.
func startEdgeChild(t *testing.T, c *raftCluster, name string, acme ACMEOptions) *edgeChild {
	t.Helper()
	cert, key, err := c.ca.Issue("node-child", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + pebbletest.FreePort(t)
	cfg, _ := json.Marshal(edgeChildConfig{
		Node: name, RaftID: "node-child", RaftAddr: addr, Dir: filepath.Join(t.TempDir(), "raft"),
		CAPEM: c.ca.CertPEM, CertPEM: cert, KeyPEM: key, MinSeq: c.nodes[0].Tail(), ACME: acme,
	})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), edgeChildEnv+"="+string(cfg))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &testkit.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := &edgeChild{name: name, cmd: cmd}
	t.Cleanup(func() {
		e.kill()
		if t.Failed() {
			t.Logf("%s (child process) stderr:\n%s", name, stderr.String())
		}
	})
	c.addVoter(t, "node-child", addr)
	ready := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		ready <- line
		io.Copy(io.Discard, r)
	}()
	var line string
	select {
	case line = <-ready:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not start within 60s; stderr:\n%s", name, stderr.String())
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "ready" {
		t.Fatalf("%s: %q on stdout, want \"ready HTTP HTTPS\"; stderr:\n%s", name, line, stderr.String())
	}
	e.httpsAddr = f[2]
	return e
}

// kill is SIGKILL: no unlock, no clean-up, nothing.
func (e *edgeChild) kill() {
	if e.cmd.ProcessState == nil {
		e.cmd.Process.Kill() // the child this test started, by its PID
		e.cmd.Wait()
	}
}

// processEdges is the set-up of the tests below: a Raft cluster with edge
// node edge-a in a child process, its order for host under way and
// Pebble's validation of it held; edge-b, in this process, not started yet.
type processEdges struct {
	rc    *raftCluster
	peb   *pebble
	val   *validations
	child *edgeChild
	view  *cluster.View // of node-1, where edge-b runs
}

func startProcessEdges(t *testing.T, host string, lease time.Duration) *processEdges {
	t.Helper()
	p := &processEdges{rc: newRaftCluster(t)}
	_, ctl := testkit.Run(t, p.rc.nodes[0], "10.96.0.0/16", cluster.ViewOptions{})
	p.view, _ = testkit.Run(t, p.rc.nodes[1], "10.96.0.0/16", cluster.ViewOptions{})
	port := startBackend(t, "api-1", "127.0.0.1", 0)
	p.peb = newPebble(t, 90*24*time.Hour)
	p.val = newValidations(t)
	p.peb.start(t, p.val.port)
	p.val.Hold()
	p.child = startEdgeChild(t, p.rc, "edge-a", p.peb.acme(lease))
	castOn(t, ctl, "api", port, host, tlsAuto)
	addInstanceOn(t, ctl, "api", "api-1", "127.0.0.1")
	waitFor(t, 60*time.Second, "edge-a's order to be validated", func() bool { return p.val.Waiting() > 0 })
	if got := issueLockHolder(p.rc.nodes[1], host); got != "edge-a" {
		t.Fatalf("lock holder while edge-a's order is validated: %q", got)
	}
	return p
}

// startEdgeB starts edge-b and sends every validation to it: Pebble cannot
// reach edge-a at all.
func (p *processEdges) startEdgeB(t *testing.T, lease time.Duration) *edge {
	t.Helper()
	b := startEdgeOn(t, p.rc.nodes[1], p.view, "edge-b", p.peb.acme(lease))
	p.val.routeTo(func() *edge { return b })
	p.val.Release()
	return b
}

func TestEdgeProcessesOneOrderAnsweredFromTheLogByTheOtherNode(t *testing.T) {
	const host = "procs.example.test"
	p := startProcessEdges(t, host, 0)
	// edge-b never saw the challenge edge-a's process started: it can only
	// answer it from the token edge-a stored in the log.
	b := p.startEdgeB(t, 0)
	waitCertReady(t, b, host)
	if got := p.peb.Orders(); got != 1 {
		t.Errorf("Pebble created %d orders for one certificate on two edge nodes, want 1", got)
	}
	sb := b.serial(host, p.peb.Issuing)
	var sa string
	waitFor(t, 10*time.Second, "edge-a to serve the certificate", func() bool {
		sa = serialAt(p.child.httpsAddr, host, p.peb.Issuing)
		return sa != ""
	})
	if sb == "" || sa != sb {
		t.Errorf("edge-a (child process) serves serial %q, edge-b %q: want one certificate", sa, sb)
	}
}

func TestEdgeProcessKilledMidOrderIsTakenOver(t *testing.T) {
	const host = "killed.example.test"
	const lease = 2 * time.Second
	p := startProcessEdges(t, host, lease)
	p.child.kill()
	killed := time.Now()
	b := p.startEdgeB(t, lease)
	waitCertReady(t, b, host)
	d := time.Since(killed)
	t.Logf("edge-a SIGKILLed mid-order; edge-b had the certificate %v later", d.Round(100*time.Millisecond))
	if d < lease {
		t.Errorf("edge-b had the certificate %v after edge-a was killed, before edge-a's lease (%v) could lapse", d, lease)
	}
	if got := p.peb.Orders(); got != 2 {
		t.Errorf("Pebble created %d orders, want 2: the killed node's and the survivor's", got)
	}
	// certmagic releases the lock after it has stored the certificate,
	// which the edge may already serve.
	waitFor(t, 10*time.Second, "the issue lock to be released", func() bool { return issueLockHolder(p.rc.nodes[1], host) == "" })
	if resp, body := get(t, client(b.ing.HTTPSAddr(), p.peb.Issuing), "https://"+host+"/"); resp.StatusCode != 200 {
		t.Errorf("HTTPS through edge-b: %d %q", resp.StatusCode, body)
	}
}
