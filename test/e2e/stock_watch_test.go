package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/api"
	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/orderedlog/badger"
	"github.com/runenet/runenet/readiness"

	"github.com/runenet/runenet/internal/testkit"
)

const (
	stockLoadServices = 100_000
	stockLoadRate     = 1000 // updates per second
	stockLoadFor      = 5 * time.Second
	stockLoadMaxLag   = time.Second
)

// TestStockWatchLoad follows runed's API from a remote View, as plugin/rune
// in a stock CoreDNS does, over a store of 100,000 services while instances
// flip ready/unready at 1,000 updates/s, each its own log batch written by a
// controller: the remote View's lag (what rune_dataplane_stale_seconds
// reports) must stay under a second and it must end at the log's tail.
// Everything runs in this process on loopback: the API over a real Badger
// log, and the remote View over HTTP.
func TestStockWatchLoad(t *testing.T) {
	if testing.Short() && os.Getenv("RUNE_E2E") == "" { // CI (RUNE_E2E=1) always runs it
		t.Skip("populates 100,000 services")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lg, view, ctl, addr := stockServeAPI(t, ctx)

	start := time.Now()
	stockPopulate(t, ctx, ctl, stockLoadServices)
	t.Logf("cast %d services in %s (seq %d)", stockLoadServices, time.Since(start).Round(time.Millisecond), lg.Tail())

	// Instances to flip: one per service across the namespaces.
	const instances = 100
	for i := range instances {
		in := cluster.Instance{ID: fmt.Sprintf("load-%d", i), Service: fmt.Sprintf("svc%d", i), Namespace: fmt.Sprintf("ns%d", i%100),
			Node: "node-1", IP: netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)}), Ready: true}
		if _, err := ctl.RegisterInstance(ctx, in); err != nil {
			t.Fatal(err)
		}
	}

	client, err := api.NewClient(addr, stockAPIToken)
	if err != nil {
		t.Fatal(err)
	}
	remote := cluster.NewView(client, cluster.ViewOptions{StaleBudget: 30 * time.Second})
	done := make(chan struct{})
	start = time.Now()
	go func() { defer close(done); remote.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := remote.WaitFor(ctx, lg.Tail()); err != nil {
		t.Fatal(err)
	}
	if got := remote.Snapshot().NumServices(); got != stockLoadServices {
		t.Fatalf("remote view holds %d services, want %d", got, stockLoadServices)
	}
	t.Logf("remote view loaded %d services over the API in %s", stockLoadServices, time.Since(start).Round(time.Millisecond))

	// Two lags, sampled often enough to see any excursion past the bar: the
	// View's own (what rune_dataplane_stale_seconds reports), and the delay,
	// measured here, from a seq being in the log to the remote View holding
	// it. The View's own counts from the tail it has heard of, so a stream
	// backed up in runed would escape it; the second one cannot.
	var maxLag, maxDelay time.Duration
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		type mark struct {
			seq uint64
			at  time.Time
		}
		var pending []mark
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case now := <-tick.C:
				maxLag = max(maxLag, remote.Lag())
				pending = append(pending, mark{lg.Tail(), now})
				applied := remote.Snapshot().Seq
				for len(pending) > 0 && pending[0].seq <= applied {
					maxDelay = max(maxDelay, now.Sub(pending[0].at))
					pending = pending[1:]
				}
				if len(pending) > 0 {
					maxDelay = max(maxDelay, now.Sub(pending[0].at))
				}
			}
		}
	}()

	// Paced, not as fast as possible: the bar is a sustained rate. One
	// controller, as in runed, with concurrent callers (as API clients
	// would be): a caller waits for its batch to be durable and applied,
	// which one at a time caps below 1,000/s here; instance writes of
	// different services share Badger's group commits. They flip disjoint
	// instances, so their preconditions never conflict.
	const writers = 8
	first := lg.Tail()
	start = time.Now()
	total := int(stockLoadFor.Seconds() * stockLoadRate)
	errs := make(chan error, writers)
	wctl := cluster.NewController(lg, view, cluster.ControllerOptions{})
	for w := range writers {
		go func() {
			for i := w; i < total; i += writers {
				if d := time.Until(start.Add(time.Duration(i) * time.Second / stockLoadRate)); d > 0 {
					time.Sleep(d)
				}
				// Each flip changes the instance and its service's endpoints: one batch.
				if _, err := wctl.SetInstanceReady(ctx, fmt.Sprintf("load-%d", i%instances), (i/instances)%2 == 1); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	tail := lg.Tail()
	if err := remote.WaitFor(ctx, tail); err != nil {
		t.Fatal(err)
	}
	close(stopSampling)
	<-sampled
	rate := float64(tail-first) / elapsed.Seconds()
	t.Logf("%d batches in %s (%.0f/s); remote view: max lag %s (View.Lag), max delay behind the log %s",
		tail-first, elapsed.Round(time.Millisecond), rate, maxLag, maxDelay.Round(time.Millisecond))

	if rate < 0.9*stockLoadRate {
		t.Errorf("wrote %.0f batches/s, want about %d: the load was not applied", rate, stockLoadRate)
	}
	if maxLag >= stockLoadMaxLag || maxDelay >= stockLoadMaxLag {
		t.Errorf("remote view lagged up to %s (View.Lag) and %s behind the log under load, want both under %s", maxLag, maxDelay, stockLoadMaxLag)
	}
	// At the tail: the last heartbeat after the burst brings the lag to 0.
	deadline := time.Now().Add(2 * time.Second)
	for remote.Lag() != 0 || remote.Snapshot().Seq != lg.Tail() {
		if time.Now().After(deadline) {
			t.Fatalf("remote view at seq %d, log tail %d, lag %s: not at the tail", remote.Snapshot().Seq, lg.Tail(), remote.Lag())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if g := testkit.Metric(t, "rune_dataplane_stale_seconds", nil); g != 0 {
		t.Errorf("rune_dataplane_stale_seconds %v at the tail, want 0", g)
	}
}

// stockServeAPI runs what runed runs behind its API — a Badger log, its View
// and controller, all returned — and serves the API on loopback TCP with a token.
func stockServeAPI(t *testing.T, ctx context.Context) (*badger.Log, *cluster.View, *cluster.Controller, string) {
	t.Helper()
	lg, err := badger.Open(t.TempDir(), badger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Room for 100,000 VIPs.
	if err := cluster.Bootstrap(ctx, lg, netip.MustParsePrefix("10.64.0.0/12")); err != nil {
		t.Fatal(err)
	}
	view := cluster.NewView(lg, cluster.ViewOptions{})
	viewDone := make(chan struct{})
	go func() { defer close(viewDone); view.Run(ctx) }()
	ctl := cluster.NewController(lg, view, cluster.ControllerOptions{})
	l, err := api.Listen("tcp://127.0.0.1:0", stockAPIToken)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:     (&api.Server{Controller: ctl, View: view, Log: lg, Readiness: &readiness.Registry{}, Token: stockAPIToken}).Handler(),
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	go srv.Serve(l)
	t.Cleanup(func() {
		srv.Close()
		<-viewDone
		lg.Close()
	})
	return lg, view, ctl, "tcp://" + l.Addr().String()
}

// stockPopulate casts n services ("svc<i>" in "ns<i%100>") in casts of a few
// thousand: far fewer batches than one cast each, and each well inside
// Badger's transaction limit.
func stockPopulate(t *testing.T, ctx context.Context, ctl *cluster.Controller, n int) {
	t.Helper()
	const perCast = 2000
	for first := 0; first < n; first += perCast {
		var b strings.Builder
		b.WriteString("services:\n")
		for i := first; i < min(first+perCast, n); i++ {
			fmt.Fprintf(&b, "  - name: svc%d\n    namespace: ns%d\n    ports:\n      - name: http\n        port: 80\n", i, i%100)
		}
		if _, _, err := ctl.Cast(ctx, []cluster.SourceFile{{Name: "load.yaml", Data: []byte(b.String())}}); err != nil {
			t.Fatalf("cast of services %d..: %v", first, err)
		}
	}
}
