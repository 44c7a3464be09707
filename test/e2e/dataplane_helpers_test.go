package e2e

// The data plane e2e test runs its pieces as processes inside network
// namespaces: this test binary re-executed with RUNE_DP_HELPER naming the
// role. Results come back on stdout as lines starting with "RESULT ".

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/orderedlog/badger"
	"github.com/runenet/runenet/policy"
	"github.com/runenet/runenet/proxy"
	"github.com/runenet/runenet/proxy/netnstest"
)

const dpCIDR = "10.96.0.0/16"

// TestDataplaneHelper is not a test: it is the entry point of the helper
// processes, and does nothing when run normally.
func TestDataplaneHelper(t *testing.T) {
	role := os.Getenv("RUNE_DP_HELPER")
	if role == "" {
		return
	}
	if err := dpRoles[role](); err != nil {
		fmt.Printf("RESULT error %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// dpRoles are the helper processes' entry points; other tests' files add
// their own roles in init.
var dpRoles = map[string]func() error{
	"node": dpNode, "backend": dpBackend, "http": dpHTTP, "udp": dpUDP, "load": dpLoad, "ping": dpPing,
}

func result(v any) {
	b, _ := json.Marshal(v)
	fmt.Printf("RESULT %s\n", b)
}

// nodeCmd is one stdin line of the node helper: a cast, or an instance
// coming up or going away, through the real controller.
type nodeCmd struct {
	Cast       string
	Register   *cluster.Instance
	Deregister string
}

// dpNode runs the data plane over a real Badger OrderedLog, View and
// controller. It executes one nodeCmd per stdin line and answers (the VIP of
// a cast) once the data plane has applied the resulting batch.
func dpNode() error {
	ctx := context.Background()
	lg, err := badger.Open(os.Getenv("RUNE_DP_DIR"), badger.Options{})
	if err != nil {
		return err
	}
	defer lg.Close()
	if err := cluster.Bootstrap(ctx, lg, netip.MustParsePrefix(dpCIDR)); err != nil {
		return err
	}
	// RUNE_DP_KERNEL selects kernel forwarding, with a short stale budget
	// so the test can watch its heartbeats lapse.
	kernel := os.Getenv("RUNE_DP_KERNEL") != ""
	var budget time.Duration
	if kernel {
		budget = kernelStaleBudget
	}
	view := cluster.NewView(lg, cluster.ViewOptions{StaleBudget: budget})
	go view.Run(ctx)
	ctl := cluster.NewController(lg, view, cluster.ControllerOptions{})
	// The proxy asks for the policy engine as runed's asks the node runtime.
	var engine atomic.Pointer[policy.Engine]
	dp, err := proxy.Start(view, proxy.DataplaneConfig{Proxy: proxy.Config{
		Dev: os.Getenv("RUNE_DP_DEV") != "", Kernel: kernel, DialTimeout: time.Second, Policy: engine.Load,
	}})
	if err != nil {
		return err
	}
	defer dp.Close()
	// With RUNE_DP_POLICY the node also enforces network policy
	// (policy_helpers_test.go); answers then wait for its tables too. With
	// RUNE_DP_POLICY_LATE the engine starts only once the data plane has
	// its table and the test has sent a line: the worst start order.
	sc := bufio.NewScanner(os.Stdin)
	policyAt := func(uint64) bool { return true }
	if os.Getenv("RUNE_DP_POLICY") != "" {
		if os.Getenv("RUNE_DP_POLICY_LATE") != "" {
			if err := waitFor(func() bool { ok, _ := dp.Ready(); return ok }); err != nil {
				return fmt.Errorf("data plane not ready: %w", err)
			}
			result("routes")
			if !sc.Scan() {
				return fmt.Errorf("stdin closed before the policy engine was let start")
			}
		}
		stop, at, err := policyNode(view, &engine)
		if err != nil {
			return err
		}
		defer stop()
		policyAt = at
	}
	if err := waitFor(func() bool { ok, _ := dp.Ready(); return ok && policyAt(0) }); err != nil {
		_, why := dp.Ready()
		return fmt.Errorf("data plane not ready: %s", why)
	}
	result("ready")
	for sc.Scan() {
		var cmd nodeCmd
		if err := json.Unmarshal(sc.Bytes(), &cmd); err != nil {
			return err
		}
		var seq uint64
		var answer any = "ok"
		switch {
		case cmd.Cast != "":
			var res []cluster.CastResult
			res, seq, err = ctl.Cast(ctx, []cluster.SourceFile{{Name: "svc.yaml", Data: []byte(cmd.Cast)}})
			if err == nil {
				answer = res[0].VIP
			}
		case cmd.Register != nil:
			seq, err = ctl.RegisterInstance(ctx, *cmd.Register)
		default:
			seq, err = ctl.DeregisterInstance(ctx, cmd.Deregister)
		}
		if err != nil {
			return err
		}
		if err := waitFor(func() bool { s, ok := dp.Applied(); return ok && s >= seq && policyAt(seq) }); err != nil {
			return fmt.Errorf("batch %d not applied: %w", seq, err)
		}
		result(answer)
	}
	return nil
}

func waitFor(cond func() bool) error {
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// dpBackend serves HTTP on :8080 (answering its name) and UDP echo on :9053
// at RUNE_DP_ADDR until stdin closes, then shuts down gracefully.
func dpBackend() error {
	addr, name := os.Getenv("RUNE_DP_ADDR"), os.Getenv("RUNE_DP_NAME")
	ln, err := net.Listen("tcp4", net.JoinHostPort(addr, "8080"))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	})}
	go srv.Serve(ln)
	uc, err := net.ListenPacket("udp4", net.JoinHostPort(addr, "9053"))
	if err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := uc.ReadFrom(buf)
			if err != nil {
				return
			}
			uc.WriteTo(append([]byte(name+" "), buf[:n]...), from)
		}
	}()
	result("ready")
	io.Copy(io.Discard, os.Stdin)
	uc.Close()
	return srv.Shutdown(context.Background())
}

// requests is the outcome of a series of requests: answers by backend name,
// and failures with how long each took to fail.
type requests struct {
	Names    map[string]int
	Errors   []string
	MaxErrMs int64
}

func (r *requests) add(name string, err error, took time.Duration) {
	if err != nil {
		r.Errors = append(r.Errors, err.Error())
		r.MaxErrMs = max(r.MaxErrMs, took.Milliseconds())
		return
	}
	r.Names[name]++
}

func newHTTPClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// dpHTTP makes RUNE_DP_COUNT requests to RUNE_DP_URL, a new connection each.
func dpHTTP() error {
	n, _ := strconv.Atoi(os.Getenv("RUNE_DP_COUNT"))
	c := newHTTPClient()
	r := requests{Names: map[string]int{}}
	for range n {
		start := time.Now()
		name, err := get(c, os.Getenv("RUNE_DP_URL"))
		r.add(name, err, time.Since(start))
	}
	result(r)
	return nil
}

// dpUDP starts RUNE_DP_COUNT flows (a socket each) to RUNE_DP_TARGET.
func dpUDP() error {
	n, _ := strconv.Atoi(os.Getenv("RUNE_DP_COUNT"))
	r := requests{Names: map[string]int{}}
	for i := range n {
		start := time.Now()
		name, err := udpAsk(os.Getenv("RUNE_DP_TARGET"), fmt.Sprint("flow", i))
		r.add(name, err, time.Since(start))
	}
	result(r)
	return nil
}

func udpAsk(target, msg string) (string, error) {
	c, err := net.Dial("udp4", target)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	name, echo, _ := strings.Cut(string(buf[:n]), " ")
	if echo != msg {
		return "", fmt.Errorf("echo %q for %q", buf[:n], msg)
	}
	return name, nil
}

// dpLoad runs 4 workers of back-to-back requests until stdin closes. Each
// stdin line asks for progress: the requests each worker has finished.
func dpLoad() error {
	var ok, failed atomic.Int64
	var finished [4]atomic.Int64
	var mu sync.Mutex
	var errs []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range finished {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newHTTPClient()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := get(c, os.Getenv("RUNE_DP_URL")); err != nil {
					failed.Add(1)
					mu.Lock()
					if len(errs) < 5 {
						errs = append(errs, err.Error())
					}
					mu.Unlock()
				} else {
					ok.Add(1)
				}
				finished[w].Add(1)
			}
		}()
	}
	result("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var p []int64
		for i := range finished {
			p = append(p, finished[i].Load())
		}
		result(p)
	}
	close(stop)
	wg.Wait()
	result(map[string]any{"ok": ok.Load(), "failed": failed.Load(), "errors": errs})
	return nil
}

// dpPing sends an ICMP echo to RUNE_DP_TARGET and reports whether an echo
// reply came back within a second.
func dpPing() error {
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return err
	}
	defer c.Close()
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: os.Getpid() & 0xffff, Seq: 1, Data: []byte("rune")}}
	b, _ := msg.Marshal(nil)
	target := &net.IPAddr{IP: net.ParseIP(os.Getenv("RUNE_DP_TARGET"))}
	if _, err := c.WriteTo(b, target); err != nil {
		result("send failed: " + err.Error())
		return nil
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			result("no reply")
			return nil
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err == nil && m.Type == ipv4.ICMPTypeEchoReply && from.String() == target.IP.String() {
			result("reply")
			return nil
		}
	}
}

// helper is a running helper process.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

// startHelper runs role inside ns with env, and waits for its first result
// (for servers, "ready").
func startHelper(t testing.TB, ns *netnstest.NS, role string, env ...string) (*helper, string) {
	t.Helper()
	cmd := ns.Command(os.Args[0], "-test.run=^TestDataplaneHelper$")
	cmd.Env = append(append(os.Environ(), "RUNE_DP_HELPER="+role), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	t.Cleanup(func() { h.stop() })
	return h, h.next(t, role)
}

// next returns the helper's next result line.
func (h *helper) next(t testing.TB, role string) string {
	t.Helper()
	for h.out.Scan() {
		line := h.out.Text()
		if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
			if strings.HasPrefix(rest, "error ") {
				t.Fatalf("%s helper: %s", role, rest)
			}
			return rest
		}
	}
	t.Fatalf("%s helper exited without a result", role)
	return ""
}

// kill ends the helper at once (SIGKILL): no clean shutdown.
func (h *helper) kill() {
	h.cmd.Process.Kill()
	h.cmd.Wait()
}

// stop closes stdin (servers shut down gracefully on it) and waits.
func (h *helper) stop() {
	h.stdin.Close()
	done := make(chan struct{})
	go func() { h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		h.cmd.Process.Kill()
		<-done
	}
}

// runHelper runs a client role to completion and decodes its result into v.
func runHelper(t testing.TB, ns *netnstest.NS, v any, role string, env ...string) {
	t.Helper()
	_, res := startHelper(t, ns, role, env...)
	if err := json.Unmarshal([]byte(res), v); err != nil {
		t.Fatalf("%s result %q: %v", role, res, err)
	}
}
