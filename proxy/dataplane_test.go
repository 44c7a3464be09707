package proxy

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/orderedlog/badger"
)

type fakeSource struct {
	mu      sync.Mutex
	snap    *cluster.Snapshot
	changed chan struct{}
}

func newFakeSource(s *cluster.Snapshot) *fakeSource {
	return &fakeSource{snap: s, changed: make(chan struct{})}
}

func (f *fakeSource) Snapshot() *cluster.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap
}

func (f *fakeSource) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *fakeSource) publish(s *cluster.Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snap = s
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeSource) Loaded() bool { return true }
func (f *fakeSource) Stale() bool  { return false }

func (f *fakeSource) Lag() time.Duration         { return 0 }
func (f *fakeSource) StaleBudget() time.Duration { return 30 * time.Second }

type fakeInterceptor struct {
	fail, failBeats atomic.Bool
	syncs, beats    atomic.Int32
	patchBeats      atomic.Int32 // Patch calls that carried a heartbeat
	closed          atomic.Bool
	scope           atomic.Pointer[SourceScope] // the last KeepSources
}

func (f *fakeInterceptor) Sync(netip.Prefix, []Redirect) error {
	f.syncs.Add(1)
	if f.fail.Load() {
		return errors.New("boom")
	}
	return nil
}

func (f *fakeInterceptor) Patch(_ []Redirect, alive time.Duration) error {
	f.syncs.Add(1)
	if f.fail.Load() {
		return errors.New("boom")
	}
	if alive > 0 {
		f.patchBeats.Add(1)
		return f.Heartbeat(alive)
	}
	return nil
}

func (f *fakeInterceptor) Heartbeat(time.Duration) error {
	f.beats.Add(1)
	if f.failBeats.Load() {
		return errors.New("beat failed")
	}
	return nil
}

func (f *fakeInterceptor) KeepSources(sc SourceScope) { f.scope.Store(&sc) }

func (f *fakeInterceptor) Close() error { f.closed.Store(true); return nil }

func snapshotAt(seq uint64) *cluster.Snapshot {
	return &cluster.Snapshot{Seq: seq, Network: &cluster.ClusterNetwork{CIDR: netip.MustParsePrefix("10.96.0.0/16")}}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDataplaneReadinessFollowsSync(t *testing.T) {
	icpt := &fakeInterceptor{}
	icpt.fail.Store(true)
	src := newFakeSource(snapshotAt(1))
	d, err := Start(src, DataplaneConfig{Proxy: Config{InterceptAddr: netip.MustParseAddrPort("127.0.0.1:0")}, Interceptor: icpt, RetryInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "a failed sync", func() bool { return icpt.syncs.Load() > 0 })
	if ok, why := d.Ready(); ok || !strings.Contains(why, "boom") {
		t.Errorf("after a failed sync: ready=%v %q", ok, why)
	}
	icpt.fail.Store(false)
	eventually(t, "the retry to succeed", func() bool { ok, _ := d.Ready(); return ok })

	src.publish(snapshotAt(2))
	eventually(t, "seq 2 applied", func() bool { s, _ := d.Applied(); return s == 2 })
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if !icpt.closed.Load() {
		t.Error("Close did not remove the interception")
	}
}

// WaitApplied returns once the seq asked for (or a later one) is in place,
// and not before: a wait for a seq not yet published ends with its context.
func TestDataplaneWaitApplied(t *testing.T) {
	src := newFakeSource(snapshotAt(1))
	d, err := Start(src, DataplaneConfig{Proxy: Config{InterceptAddr: netip.MustParseAddrPort("127.0.0.1:0")}, Interceptor: &fakeInterceptor{}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.WaitApplied(ctx, 1); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if err := d.WaitApplied(short, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied(2) before seq 2 exists: %v, want the context's deadline", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- d.WaitApplied(ctx, 3) }()
	src.publish(snapshotAt(3))
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if s, _ := d.Applied(); s != 3 {
		t.Fatalf("WaitApplied(3) returned with seq %d applied", s)
	}
}

func TestDataplaneNotReadyWithoutNetwork(t *testing.T) {
	src := newFakeSource(&cluster.Snapshot{Seq: 1})
	d, err := Start(src, DataplaneConfig{Proxy: Config{InterceptAddr: netip.MustParseAddrPort("127.0.0.1:0")}, Interceptor: &fakeInterceptor{}, RetryInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	eventually(t, "a sync attempt", func() bool { _, why := d.Ready(); return strings.Contains(why, "not bootstrapped") })
}

// With kernel forwarding the data plane reports how many ports the kernel
// carries, refreshes the deadline after a sync and on its own, and counts
// refreshes that fail.
func TestDataplaneKernelHeartbeats(t *testing.T) {
	c := testkit.NewCluster(t, "10.96.0.0/16", badger.Options{}, cluster.ViewOptions{StaleBudget: 500 * time.Millisecond})
	c.Cast(t, `
service:
  name: api
  ports: [{name: http, port: 80}, {name: dns, port: 53, protocol: udp}]
`)
	seq, err := c.Ctl.RegisterInstance(context.Background(), cluster.Instance{ID: "api-1", Service: "api", Namespace: "default", Node: "n1", IP: netip.MustParseAddr("10.1.0.2"), Ready: true})
	if err != nil {
		t.Fatal(err)
	}
	icpt := &fakeInterceptor{}
	d, err := Start(c.View, DataplaneConfig{Proxy: Config{Kernel: true, InterceptAddr: netip.MustParseAddrPort("127.0.0.1:0")}, Interceptor: icpt})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	eventually(t, "the instance applied", func() bool { s, _ := d.Applied(); return s >= seq })
	if got := testutil.ToFloat64(kernelPorts); got != 1 {
		t.Errorf("rune_proxy_kernel_ports = %v, want 1 (TCP 80; UDP stays on the proxy)", got)
	}
	// A change's patch carries the heartbeat in its own transaction.
	seq, err = c.Ctl.SetInstanceReady(context.Background(), "api-1", false)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the change applied", func() bool { s, _ := d.Applied(); return s >= seq })
	if icpt.patchBeats.Load() == 0 {
		t.Error("a patch in kernel mode did not carry the heartbeat")
	}
	beats := icpt.beats.Load()
	eventually(t, "heartbeats between changes", func() bool { return icpt.beats.Load() > beats+2 })
	errs := testutil.ToFloat64(heartbeatErrors)
	icpt.failBeats.Store(true)
	eventually(t, "a failed heartbeat counted", func() bool { return testutil.ToFloat64(heartbeatErrors) > errs })
}

// Kernel forwarding learns which sources to keep from the log: the
// container network and the node's own subnet, once its record appears (a
// change that re-syncs the whole table, even with no service changed).
func TestDataplaneSourceScopeFollowsTheLog(t *testing.T) {
	c := testkit.NewCluster(t, "10.96.0.0/16", badger.Options{}, cluster.ViewOptions{})
	seq := c.Cast(t, "service:\n  name: api\n  ports: [{name: http, port: 80}]\n")
	icpt := &fakeInterceptor{}
	d, err := Start(c.View, DataplaneConfig{Proxy: Config{Kernel: true, InterceptAddr: netip.MustParseAddrPort("127.0.0.1:0")}, Interceptor: icpt, Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	eventually(t, "the service applied", func() bool { s, _ := d.Applied(); return s >= seq })
	if sc := icpt.scope.Load(); sc == nil || *sc != (SourceScope{}) {
		t.Fatalf("without a container network: scope %+v, want none (masquerade everything)", sc)
	}
	seq = c.RegisterNode(t, "n1", netip.MustParseAddr("192.0.2.1"))
	eventually(t, "the node record applied", func() bool { s, _ := d.Applied(); return s >= seq })
	rec, _ := c.View.Snapshot().Node("n1")
	want := SourceScope{Containers: netip.MustParsePrefix("10.88.0.0/16"), Local: rec.Value.Subnet}
	if sc := icpt.scope.Load(); !want.Local.IsValid() || *sc != want {
		t.Errorf("after n1's record: scope %+v, want %+v", *sc, want)
	}
}
