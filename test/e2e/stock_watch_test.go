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
	stockLoadServices  = 100_000
	stockLoadInstances = 100  // flipped, one per service across the namespaces
	stockLoadRate      = 1000 // updates per second
	stockLoadFor       = 5 * time.Second
)

// stockLoad is a remote View following runed's API, as plugin/rune in a
// stock CoreDNS does, over a store of many services. Everything runs in this
// process on loopback: the API over a real Badger log, and the remote View
// over HTTP.
type stockLoad struct {
	ctx    context.Context
	lg     *badger.Log
	remote *cluster.View
	// wctl writes the load: one controller, as in runed, over the API's log.
	wctl *cluster.Controller
}

// newStockLoad casts services services and registers stockLoadInstances
// ready instances, then starts the remote View and waits until it holds them.
func newStockLoad(tb testing.TB, services int) *stockLoad {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	lg, view, ctl, addr := stockServeAPI(tb, ctx)
	start := time.Now()
	stockPopulate(tb, ctx, ctl, services)
	tb.Logf("cast %d services in %s (seq %d)", services, time.Since(start).Round(time.Millisecond), lg.Tail())
	for i := range stockLoadInstances {
		in := cluster.Instance{ID: fmt.Sprintf("load-%d", i), Service: fmt.Sprintf("svc%d", i), Namespace: fmt.Sprintf("ns%d", i%100),
			Node: "node-1", IP: netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)}), Ready: true}
		if _, err := ctl.RegisterInstance(ctx, in); err != nil {
			tb.Fatal(err)
		}
	}
	client, err := api.NewClient(addr, stockAPIToken)
	if err != nil {
		tb.Fatal(err)
	}
	remote := cluster.NewView(client, cluster.ViewOptions{StaleBudget: 30 * time.Second})
	done := make(chan struct{})
	start = time.Now()
	go func() { defer close(done); remote.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	waitCtx, waitCancel := context.WithTimeout(ctx, 5*time.Minute)
	defer waitCancel()
	if err := remote.WaitFor(waitCtx, lg.Tail()); err != nil {
		tb.Fatalf("remote view never reached the log's tail %d: %v", lg.Tail(), err)
	}
	if got := remote.Snapshot().NumServices(); got != services {
		tb.Fatalf("remote view holds %d services, want %d", got, services)
	}
	tb.Logf("remote view loaded %d services over the API in %s", services, time.Since(start).Round(time.Millisecond))
	return &stockLoad{ctx: ctx, lg: lg, remote: remote, wctl: cluster.NewController(lg, view, cluster.ControllerOptions{})}
}

// flipReady is the ready state flip i of a load gives its instance,
// load-<i % stockLoadInstances>: each flip changes it.
func flipReady(i int) bool { return (i/stockLoadInstances)%2 == 1 }

// stockLoadRun is what one run of the load measured.
type stockLoadRun struct {
	batches uint64
	elapsed time.Duration
	// maxLag is the worst View.Lag (what rune_dataplane_stale_seconds
	// reports); maxDelay the worst delay, measured here, from a seq being in
	// the log to the remote View holding it. The View's own lag counts from
	// the tail it has heard of, so a stream backed up in runed would escape
	// it; the delay cannot.
	maxLag, maxDelay time.Duration
}

// run writes flips [from, from+n) paced at rate per second, with concurrent
// callers (as API clients would be: a caller waits for its batch to be
// durable and applied, which one at a time caps below 1,000/s here; flips of
// different services share Badger's group commits), sampling the remote
// View's lag throughout; it returns once the remote View has every batch.
func (s *stockLoad) run(tb testing.TB, from, n, rate int) stockLoadRun {
	tb.Helper()
	var r stockLoadRun
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
				r.maxLag = max(r.maxLag, s.remote.Lag())
				pending = append(pending, mark{s.lg.Tail(), now})
				applied := s.remote.Snapshot().Seq
				for len(pending) > 0 && pending[0].seq <= applied {
					r.maxDelay = max(r.maxDelay, now.Sub(pending[0].at))
					pending = pending[1:]
				}
				if len(pending) > 0 {
					r.maxDelay = max(r.maxDelay, now.Sub(pending[0].at))
				}
			}
		}
	}()
	// They flip disjoint instances, so their preconditions never conflict.
	const writers = 8
	first := s.lg.Tail()
	start := time.Now()
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for i := w; i < n; i += writers {
				// Paced, not as fast as possible: the load is a sustained rate.
				if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
					time.Sleep(d)
				}
				// Each flip changes the instance and its service's endpoints: one batch.
				f := from + i
				if _, err := s.wctl.SetInstanceReady(s.ctx, fmt.Sprintf("load-%d", f%stockLoadInstances), flipReady(f)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			tb.Fatal(err)
		}
	}
	r.elapsed = time.Since(start)
	tail := s.lg.Tail()
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	if err := s.remote.WaitFor(ctx, tail); err != nil {
		tb.Fatalf("remote view did not reach the log's tail %d after the load: %v", tail, err)
	}
	close(stopSampling)
	<-sampled
	r.batches = tail - first
	return r
}

// TestStockWatchLoad follows runed's API from a remote View over a store of
// 100,000 services while instances flip ready/unready, each flip its own
// log batch: the remote View applies every flip, ends at the log's tail and
// reports no lag there. How fast and how far behind it keeps up is
// BenchmarkStockWatchLoad's (docs/benchmarks.md).
func TestStockWatchLoad(t *testing.T) {
	if testing.Short() && os.Getenv("RUNE_E2E") == "" { // CI (RUNE_E2E=1) always runs it
		t.Skip("populates 100,000 services")
	}
	s := newStockLoad(t, stockLoadServices)
	flips := int(stockLoadFor.Seconds() * stockLoadRate)
	r := s.run(t, 0, flips, stockLoadRate)
	t.Logf("%d batches in %s; remote view: max lag %s (View.Lag), max delay behind the log %s",
		r.batches, r.elapsed.Round(time.Millisecond), r.maxLag, r.maxDelay.Round(time.Millisecond))
	if r.batches != uint64(flips) {
		t.Errorf("%d flips wrote %d batches, want one each", flips, r.batches)
	}

	// Every instance's last flip is what the remote View holds, in the
	// instance and in its service's endpoints.
	snap := s.remote.Snapshot()
	for k := range stockLoadInstances {
		last := flips - stockLoadInstances + k
		want := flipReady(last)
		svc := cluster.NamespacedName{Namespace: fmt.Sprintf("ns%d", k%100), Name: fmt.Sprintf("svc%d", k)}
		ins := snap.Instances(svc.Namespace, svc.Name)
		if len(ins) != 1 || ins[0].Value.Ready != want {
			t.Errorf("%s: remote view holds instances %v, want load-%d with ready=%v", svc, ins, k, want)
		}
		ep, ok := snap.Endpoints(svc)
		if got := ok && len(ep.Value.Addresses) == 1; got != want {
			t.Errorf("%s: remote view's endpoints %v (present %v), want the instance listed: %v", svc, ep.Value, ok, want)
		}
	}

	// At the tail: the next heartbeat brings the lag to 0.
	deadline := time.Now().Add(30 * time.Second)
	for s.remote.Lag() != 0 || s.remote.Snapshot().Seq != s.lg.Tail() {
		if time.Now().After(deadline) {
			t.Fatalf("remote view at seq %d, log tail %d, lag %s: not at the tail", s.remote.Snapshot().Seq, s.lg.Tail(), s.remote.Lag())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if g := testkit.Metric(t, "rune_dataplane_stale_seconds", nil); g != 0 {
		t.Errorf("rune_dataplane_stale_seconds %v at the tail, want 0", g)
	}
}

// BenchmarkStockWatchLoad offers b.N instance flips at 1,000 per second to
// the store of TestStockWatchLoad and reports the rate the log took them at
// (batches/s) and how far the remote View fell behind (max-lag-ms, the
// View's own; max-delay-ms, measured from the log). Run it with a fixed
// count so the 100,000 services are cast once: -benchtime 5000x.
func BenchmarkStockWatchLoad(b *testing.B) {
	s := newStockLoad(b, stockLoadServices)
	b.ResetTimer()
	r := s.run(b, 0, b.N, stockLoadRate)
	b.StopTimer()
	b.ReportMetric(float64(r.batches)/r.elapsed.Seconds(), "batches/s")
	b.ReportMetric(float64(r.maxLag.Microseconds())/1000, "max-lag-ms")
	b.ReportMetric(float64(r.maxDelay.Microseconds())/1000, "max-delay-ms")
}

// stockServeAPI runs what runed runs behind its API — a Badger log, its View
// and controller, all returned — and serves the API on loopback TCP with a token.
func stockServeAPI(t testing.TB, ctx context.Context) (*badger.Log, *cluster.View, *cluster.Controller, string) {
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
	l, err := api.Listen("tcp://127.0.0.1:0", stockAPIToken, nil)
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
func stockPopulate(t testing.TB, ctx context.Context, ctl *cluster.Controller, n int) {
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
