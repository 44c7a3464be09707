package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runenet/runenet/internal/testseed"
	"github.com/runenet/runenet/orderedlog/badger"
)

const crashChildEnv = "RUNE_CLUSTER_CRASH_CHILD_DIR"

// TestCrashChild is the child side of TestCastSurvivesSIGKILL: it casts
// groups of three services through a real controller until it is killed,
// printing each acknowledged cast.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		return // only meaningful as the child of TestCastSurvivesSIGKILL
	}
	lg, err := badger.Open(dir, badger.Options{})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(3)
	}
	ctx := context.Background()
	if err := Bootstrap(ctx, lg, netip.MustParsePrefix("10.96.0.0/16")); err != nil {
		fmt.Println("ERR", err)
		os.Exit(3)
	}
	view := NewView(lg, ViewOptions{})
	go view.Run(ctx)
	ctl := NewController(lg, view, ControllerOptions{})
	out := bufio.NewWriter(os.Stdout)
	run := os.Getenv("RUNE_CLUSTER_CRASH_RUN")
	for i := 0; ; i++ {
		var files []SourceFile
		for k := 0; k < 3; k++ {
			files = append(files, svcYAML(fmt.Sprintf("r%s-c%d-s%d", run, i, k), "default", ""))
		}
		// Re-cast an older group too: a re-cast must never move a VIP.
		if i > 0 {
			files = append(files, svcYAML(fmt.Sprintf("r%s-c%d-s0", run, i-1), "default", "  image: again\n"))
		}
		res, seq, err := ctl.Cast(ctx, files)
		if err != nil {
			fmt.Fprintln(out, "ERR", err)
			out.Flush()
			os.Exit(3)
		}
		for _, r := range res {
			fmt.Fprintf(out, "ACK %d %s %s\n", seq, r.Name, r.VIP)
		}
		out.Flush()
	}
}

// Kill a casting process with SIGKILL at random points, at least 20 times:
// after every reopen each acknowledged cast is there with its VIP, no cast is
// partial, the log has no gaps, and no VIP ever changes or is shared.
func TestCastSurvivesSIGKILL(t *testing.T) {
	if testing.Short() && os.Getenv("RUNE_E2E") == "" { // CI (RUNE_E2E=1) always runs it
		t.Skip("kills and restarts a child process 20 times")
	}
	dir := t.TempDir()
	rng := testseed.Rand(t)
	vips := map[string]netip.Addr{} // every service ever acknowledged → its VIP
	acked := 0
	for run := 0; run < 20; run++ {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, fmt.Sprintf("RUNE_CLUSTER_CRASH_RUN=%d", run))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Let it get going, then kill it at a random point.
		first := <-lines
		time.Sleep(time.Duration(20+rng.IntN(200)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		for _, line := range append([]string{first}, drain(lines)...) {
			var seq uint64
			var name, vip string
			if strings.HasPrefix(line, "ERR") {
				t.Fatalf("run %d: child failed: %s", run, line)
			}
			if _, err := fmt.Sscanf(line, "ACK %d %s %s", &seq, &name, &vip); err != nil {
				continue // a line cut by the kill was never acknowledged whole
			}
			ip := netip.MustParseAddr(vip)
			if old, ok := vips[name]; ok && old != ip {
				t.Fatalf("run %d: %s acknowledged with VIP %s, earlier %s", run, name, ip, old)
			}
			vips[name] = ip
			acked++
		}
		checkStore(t, dir, vips, run)
	}
	if acked < 20 {
		t.Fatalf("only %d casts acknowledged over 20 runs: the child did not get to work", acked)
	}
	t.Logf("%d acknowledged service casts over 20 SIGKILLs", acked)
}

func drain(ch <-chan string) []string {
	var out []string
	for l := range ch {
		out = append(out, l)
	}
	return out
}

// checkStore reopens the store and checks it against what was acknowledged.
func checkStore(t *testing.T, dir string, vips map[string]netip.Addr, run int) {
	t.Helper()
	lg, err := badger.Open(dir, badger.Options{})
	if err != nil {
		t.Fatalf("run %d: reopen: %v", run, err)
	}
	defer lg.Close()
	snap, err := LoadFrom(context.Background(), lg)
	if err != nil {
		t.Fatalf("run %d: store does not load: %v", run, err)
	}
	seq := snap.Seq
	for name, vip := range vips {
		e, ok := snap.Service(NamespacedName{"default", name})
		if !ok {
			t.Fatalf("run %d: acknowledged service %s is missing after the crash", run, name)
		}
		if e.Value.VIP != vip {
			t.Fatalf("run %d: %s has VIP %s, acknowledged %s", run, name, e.Value.VIP, vip)
		}
	}
	// A cast is one batch: its three services exist together or not at all,
	// and no two services share a VIP.
	groups := map[string]int{}
	owner := map[netip.Addr]string{}
	snap.RangeServices(func(e Entry[ServiceRecord]) bool {
		name := e.Value.Spec.Name
		groups[name[:strings.LastIndex(name, "-s")]]++
		if o, ok := owner[e.Value.VIP]; ok {
			t.Errorf("run %d: VIP %s shared by %s and %s", run, e.Value.VIP, o, name)
		}
		owner[e.Value.VIP] = name
		if a, ok := snap.VIPAllocation(e.Value.VIP); !ok || a.Value.Service != name {
			t.Errorf("run %d: %s's VIP %s has no matching allocation", run, name, e.Value.VIP)
		}
		return true
	})
	for g, n := range groups {
		if n != 3 {
			t.Fatalf("run %d: cast %s is partial: %d of 3 services", run, g, n)
		}
	}
	// The log replays from 1 to the tail with no gap.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, err := lg.Watch(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	for want := uint64(1); want <= seq; {
		ev, ok := <-ch
		if !ok || ev.Err != nil {
			t.Fatalf("run %d: replay stopped at %d of %d: %v", run, want, seq, ev.Err)
		}
		if ev.Batch == nil {
			continue
		}
		if ev.Batch.Seq != want {
			t.Fatalf("run %d: replay gave seq %d, want %d", run, ev.Batch.Seq, want)
		}
		want++
	}
}
