package proxy

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"golang.org/x/sys/unix"
)

// Connections established before the proxy closes go on (a reload does not
// cut them); the relay's loops end once the last of them has.
func TestConnectionsOutliveCloseThenLoopsEnd(t *testing.T) {
	b := startBackend(t, "a")
	p := devProxy(t, Config{})
	sp := tcpPort("outlive", freePort(t, p.cfg.DevAddr), b.addr())
	p.Update(&Table{Ports: []ServicePort{sp}})
	c, err := dialVia(t, netip.AddrPortFrom(p.cfg.DevAddr, sp.VIP.Port()))
	if err != nil {
		t.Fatal(err)
	}
	c.echo(t, "before")
	p.Close()
	c.echo(t, "after the proxy closed")
	if running := p.relay.running(); running == 0 {
		t.Fatal("no relay loop running while a connection is open")
	}
	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for p.relay.running() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d relay loops still running after the last connection ended", p.relay.running())
		}
		time.Sleep(time.Millisecond)
	}
}

// A destination whose socket is full before the relay starts makes the
// relay hold what it read — a short read in a buffer, a bulk one in its
// pipe — and send it once the destination drains, before the end of the
// stream.
func TestRelayHoldsForAFullDestination(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
	}{{"copied", 100}, {"spliced", 4 * smallSize}} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			pair := func() (near, far *net.TCPConn) {
				t.Helper()
				far, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
				if err != nil {
					t.Fatal(err)
				}
				near, err = ln.AcceptTCP()
				if err != nil {
					t.Fatal(err)
				}
				far.SetDeadline(time.Now().Add(20 * time.Second))
				return near, far
			}
			clientSide, client := pair() // the relay's fd[0], and the client
			upstream, server := pair()   // the relay's fd[1], and the endpoint
			defer client.Close()
			defer server.Close()
			filler := fill(t, upstream)
			msg := bytes.Repeat([]byte("m"), tc.size)

			m := metricsFor(cluster.NamespacedName{Namespace: "test", Name: "hold-" + tc.name}, cluster.TCP)
			m.active.Inc()
			ep := &endpoint{}
			ep.active.Add(1)
			rl := newRelay()
			defer rl.close()
			if err := rl.start(clientSide, upstream, m, ep); err != nil {
				t.Fatal(err)
			}
			if _, err := client.Write(msg); err != nil {
				t.Fatal(err)
			}
			client.CloseWrite()
			got, err := io.ReadAll(server)
			if err != nil {
				t.Fatal(err)
			}
			if want := append(filler, msg...); !bytes.Equal(got, want) {
				t.Fatalf("endpoint got %d bytes, want the %d filling its socket and then the %d sent", len(got), len(filler), len(msg))
			}
			server.Close()
			if _, err := io.ReadAll(client); err != nil {
				t.Fatalf("client's end: %v", err)
			}
			// Released just after the sockets close.
			deadline := time.Now().Add(10 * time.Second)
			for ep.active.Load() != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("endpoint's active count %d after the connection ended, want 0", ep.active.Load())
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}

// fill writes to c until its socket takes no more, and returns what it wrote.
func fill(t *testing.T, c *net.TCPConn) []byte {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var wrote []byte
	chunk := bytes.Repeat([]byte("f"), 64<<10)
	rc.Write(func(fd uintptr) bool {
		for {
			n, err := unix.Write(int(fd), chunk)
			if err != nil {
				return true // EAGAIN: full
			}
			wrote = append(wrote, chunk[:n]...)
		}
	})
	return wrote
}

// running counts the loops running now.
func (rl *relay) running() int {
	n := 0
	for _, w := range rl.workers {
		w.mu.Lock()
		if w.epfd >= 0 {
			n++
		}
		w.mu.Unlock()
	}
	return n
}

// The relay's loops hold their Ps while they work and while they sleep in
// the raw wait, so the process keeps one P more than it has loops; each
// loop is pinned to a CPU of its own while there are enough.
func TestRelayLeavesAPAndPinsItsLoops(t *testing.T) {
	rl := newRelay()
	if got, want := runtime.GOMAXPROCS(0), len(rl.workers)+1; got != want {
		t.Errorf("GOMAXPROCS %d with %d relay loops, want %d", got, len(rl.workers), want)
	}
	if again := newRelay(); len(again.workers) != len(rl.workers) {
		t.Errorf("a second relay runs %d loops, the first %d: the spare P must not become a loop", len(again.workers), len(rl.workers))
	}
	cpus := allowedCPUs()
	if len(cpus) == 0 {
		t.Fatal("no CPUs in the process's affinity mask")
	}
	seen := map[int]bool{}
	for i, w := range rl.workers {
		if w.cpu != cpus[i%len(cpus)] {
			t.Errorf("loop %d pinned to CPU %d, want %d", i, w.cpu, cpus[i%len(cpus)])
		}
		if i < len(cpus) && seen[w.cpu] {
			t.Errorf("loop %d shares CPU %d with another loop", i, w.cpu)
		}
		seen[w.cpu] = true
	}
}
