// Package netnstest creates network namespaces for privileged tests and
// benchmarks of the data plane, and removes them afterwards. Everything a
// test does to the network happens inside namespaces made here.
package netnstest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireRoot skips a privileged test when not root, unless RUNE_E2E is set
// (CI), where running unprivileged is a failure rather than a skip.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("RUNE_E2E") != "" {
		tb.Fatal("RUNE_E2E is set but the test is not running as root; network namespaces need root")
	}
	tb.Skip("needs root for network namespaces (set RUNE_E2E to make this a failure)")
}

// NS is a named network namespace (ip netns), open as FD.
type NS struct {
	Name string
	FD   int
}

var seq atomic.Int64

// New creates a namespace named "<prefix>-<pid>-<n>" with lo up, and
// deletes it when the test ends.
func New(tb testing.TB, prefix string) *NS {
	tb.Helper()
	name := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1))
	Run(tb, "ip", "netns", "add", name)
	ns := &NS{Name: name}
	tb.Cleanup(func() {
		if ns.FD > 0 {
			unix.Close(ns.FD)
		}
		ns.KillAll()
		exec.Command("ip", "netns", "del", name).Run()
	})
	fd, err := unix.Open("/var/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		tb.Fatalf("open namespace %s: %v", name, err)
	}
	ns.FD = fd
	ns.Run(tb, "ip", "link", "set", "lo", "up")
	return ns
}

// KillAll SIGKILLs every process still running in the namespace (ip netns
// pids): whatever a failed test left behind there is the test's own, and a
// namespace is only deleted empty.
func (ns *NS) KillAll() {
	out, _ := exec.Command("ip", "netns", "pids", ns.Name).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// Run runs a command inside the namespace and returns its output; failure
// fails the test.
func (ns *NS) Run(tb testing.TB, args ...string) string {
	tb.Helper()
	return Run(tb, append([]string{"ip", "netns", "exec", ns.Name}, args...)...)
}

// Command prepares a command to run inside the namespace.
func (ns *NS) Command(args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...)
}

// Run runs a command and returns its output; failure fails the test.
func Run(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Link connects a and b with a veth pair, addressing each end (CIDR
// notation, e.g. "10.0.1.1/24") and bringing both up. Interface names are
// derived from the namespaces' sequence numbers to stay within 15 bytes.
func Link(tb testing.TB, a *NS, aAddr string, b *NS, bAddr string) (aIf, bIf string) {
	tb.Helper()
	n := seq.Add(1)
	aIf, bIf = fmt.Sprintf("va%d", n), fmt.Sprintf("vb%d", n)
	Run(tb, "ip", "link", "add", aIf, "netns", a.Name, "type", "veth", "peer", "name", bIf, "netns", b.Name)
	a.Run(tb, "ip", "addr", "add", aAddr, "dev", aIf)
	a.Run(tb, "ip", "link", "set", aIf, "up")
	b.Run(tb, "ip", "addr", "add", bAddr, "dev", bIf)
	b.Run(tb, "ip", "link", "set", bIf, "up")
	return aIf, bIf
}

// Do runs f on the calling goroutine's thread moved into ns, then moves the
// thread back. Sockets made in f stay in ns. f may call tb.Fatal.
func (ns *NS) Do(tb testing.TB, f func()) {
	tb.Helper()
	if err := ns.do(f); err != nil {
		tb.Fatal(err)
	}
}

func (ns *NS) do(f func()) error {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer unix.Close(orig)
	if err := unix.Setns(ns.FD, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", ns.Name, err)
	}
	defer func() {
		// A thread that cannot go back stays locked, so the runtime retires
		// it with this goroutine rather than reusing it in the namespace.
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	f()
	return nil
}

// ResolvConf points the namespace's /etc/resolv.conf at nameserver for
// commands run with ip netns exec (it bind-mounts /etc/netns/NAME/ over
// /etc), and removes the file when the test ends.
func (ns *NS) ResolvConf(tb testing.TB, nameserver string) {
	tb.Helper()
	etc := filepath.Join("/etc/netns", ns.Name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(etc) })
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver "+nameserver+"\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// Bridge creates a bridge named br inside sw (a namespace standing for the
// switch between hosts) and brings it up.
func Bridge(tb testing.TB, sw *NS, br string) {
	tb.Helper()
	sw.Run(tb, "ip", "link", "add", br, "type", "bridge")
	sw.Run(tb, "ip", "link", "set", br, "up")
}

// Attach connects ns to bridge br in sw with a veth pair: ns's end gets addr
// (CIDR notation), sw's end is a port of br. It returns ns's interface.
func Attach(tb testing.TB, sw *NS, br string, ns *NS, addr string) string {
	tb.Helper()
	n := seq.Add(1)
	nsIf, swIf := fmt.Sprintf("va%d", n), fmt.Sprintf("vb%d", n)
	Run(tb, "ip", "link", "add", nsIf, "netns", ns.Name, "type", "veth", "peer", "name", swIf, "netns", sw.Name)
	ns.Run(tb, "ip", "addr", "add", addr, "dev", nsIf)
	ns.Run(tb, "ip", "link", "set", nsIf, "up")
	sw.Run(tb, "ip", "link", "set", swIf, "master", br)
	sw.Run(tb, "ip", "link", "set", swIf, "up")
	return nsIf
}

// Dial connects to addr from inside ns (a socket belongs to the namespace
// of the thread that makes it), from any goroutine.
func (ns *NS) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	var dialErr error
	if err := ns.do(func() { c, dialErr = (&net.Dialer{}).DialContext(ctx, network, addr) }); err != nil {
		return nil, err
	}
	return c, dialErr
}
