// Package testkit is what this module's tests share: a real control plane
// to test against, reading the metrics registry the way /metrics would, a
// buffer child processes can write to from two pipes, and a server loop.
package testkit

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/badger"
)

// Cluster is a node's control plane over a real Badger log in a temp dir:
// bootstrapped, its View running, and a Controller. Everything stops with
// the test.
type Cluster struct {
	Log  *badger.Log
	View *cluster.View
	Ctl  *cluster.Controller
}

// NewCluster opens the log with lopts, bootstraps cidr and runs a View with vopts.
func NewCluster(tb testing.TB, cidr string, lopts badger.Options, vopts cluster.ViewOptions) *Cluster {
	tb.Helper()
	lg, err := badger.Open(tb.TempDir(), lopts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { lg.Close() })
	c := &Cluster{Log: lg}
	c.View, c.Ctl = Run(tb, lg, cidr, vopts)
	return c
}

// Run bootstraps cidr on lg, whichever backend it is, and runs a View with
// vopts and a Controller over it, as runed does; the View stops with the
// test, before lg closes if lg was opened first.
func Run(tb testing.TB, lg orderedlog.Log, cidr string, vopts cluster.ViewOptions) (*cluster.View, *cluster.Controller) {
	tb.Helper()
	if err := cluster.Bootstrap(context.Background(), lg, netip.MustParsePrefix(cidr)); err != nil {
		tb.Fatal(err)
	}
	view := cluster.NewView(lg, vopts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); view.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done }) // cleanups run last-in first-out
	return view, cluster.NewController(lg, view, cluster.ControllerOptions{})
}

// Cast applies service documents (YAML or JSON) in one batch and returns its seq.
func (c *Cluster) Cast(tb testing.TB, docs ...string) uint64 {
	tb.Helper()
	files := make([]cluster.SourceFile, len(docs))
	for i, d := range docs {
		files[i] = cluster.SourceFile{Name: fmt.Sprintf("svc%d.yaml", i), Data: []byte(d)}
	}
	_, seq, err := c.Ctl.Cast(context.Background(), files)
	if err != nil {
		tb.Fatalf("cast: %v", err)
	}
	return seq
}

// RegisterNode writes node name's record with its cluster address addr, as
// a starting runed does, bootstrapping the container network (10.88.0.0/16)
// on first use, and returns the write's seq.
func (c *Cluster) RegisterNode(tb testing.TB, name string, addr netip.Addr) uint64 {
	tb.Helper()
	ctx := context.Background()
	if err := cluster.BootstrapContainerNetwork(ctx, c.Log, netip.MustParsePrefix("10.88.0.0/16")); err != nil {
		tb.Fatal(err)
	}
	_, seq, err := c.Ctl.RegisterNode(ctx, cluster.NodeSpec{Name: name, Address: addr})
	if err != nil {
		tb.Fatalf("register node %s: %v", name, err)
	}
	return seq
}

// Metric sums the default registry's counter or gauge values, or histogram
// sample counts, of name whose labels include every labels[k] = v (nil: all of them), as /metrics shows them.
func Metric(tb testing.TB, name string, labels map[string]string) float64 {
	tb.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	samples:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == k && lp.GetValue() == v)
				}
				if !found {
					continue samples
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// SyncBuffer collects a child process's output from its two pipes.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Serve accepts connections on ln until the test ends (then closes it),
// handing each to handle on a goroutine of its own.
func Serve(tb testing.TB, ln net.Listener, handle func(net.Conn)) {
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
}

// FreeAddr is a loopback address (127.0.0.1:PORT) with a port nothing
// listens on now.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
