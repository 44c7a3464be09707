package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/badger"
)

type testNode struct {
	log  orderedlog.Log
	view *View
	ctl  *Controller
	now  time.Time
	mu   sync.Mutex
}

func (n *testNode) clock() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.now
}

func (n *testNode) advance(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.now = n.now.Add(d)
}

// openLog opens a real Badger log in dir, closed with the test.
func openLog(t testing.TB, dir string) *badger.Log {
	t.Helper()
	lg, err := badger.Open(dir, badger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	return lg
}

// startNode runs a View and a Controller over lg, as runed does.
func startNode(t testing.TB, lg orderedlog.Log, opts ViewOptions) *testNode {
	t.Helper()
	n := &testNode{log: lg, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	n.view = NewView(lg, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.view.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	n.ctl = NewController(lg, n.view, ControllerOptions{Now: n.clock})
	return n
}

func newNode(t testing.TB, cidr string) *testNode {
	t.Helper()
	lg := openLog(t, t.TempDir())
	if err := Bootstrap(context.Background(), lg, netip.MustParsePrefix(cidr)); err != nil {
		t.Fatal(err)
	}
	return startNode(t, lg, ViewOptions{})
}

func svcYAML(name, ns string, extra string) SourceFile {
	return SourceFile{Name: name + ".yaml", Data: []byte(fmt.Sprintf("service:\n  name: %s\n  namespace: %s\n  ports:\n    - name: http\n      port: 8080\n      targetPort: 80\n%s", name, ns, extra))}
}

func cast(t testing.TB, n *testNode, files ...SourceFile) []CastResult {
	t.Helper()
	res, _, err := n.ctl.Cast(context.Background(), files)
	if err != nil {
		t.Fatalf("cast: %v", err)
	}
	return res
}

func TestCastAllocatesStableVIPs(t *testing.T) {
	n := newNode(t, "10.96.0.0/16")
	cidr := netip.MustParsePrefix("10.96.0.0/16")
	before := testutil.ToFloat64(vipAllocations)
	res := cast(t, n, svcYAML("api", "default", ""), svcYAML("web", "default", ""))
	if len(res) != 2 || res[0].VIP == res[1].VIP {
		t.Fatalf("want two distinct VIPs, got %+v", res)
	}
	for _, r := range res {
		if !cidr.Contains(r.VIP) || r.VIP == cidr.Addr() || r.VIP == netip.MustParseAddr("10.96.255.255") {
			t.Errorf("VIP %s of %s is not a host address of %s", r.VIP, r.Name, cidr)
		}
		if r.Action != "created" {
			t.Errorf("%s: action %q, want created", r.Name, r.Action)
		}
	}
	if got := testutil.ToFloat64(vipAllocations) - before; got != 2 {
		t.Errorf("rune_vip_allocations_total moved by %v, want 2", got)
	}
	// Re-cast with a change keeps the VIP and allocates nothing.
	again := cast(t, n, svcYAML("api", "default", "  image: api:2\n"))
	if again[0].VIP != res[0].VIP || again[0].Action != "configured" {
		t.Errorf("re-cast: got %+v, want VIP %s configured", again[0], res[0].VIP)
	}
	same := cast(t, n, svcYAML("api", "default", "  image: api:2\n"))
	if same[0].Action != "unchanged" {
		t.Errorf("identical re-cast: action %q, want unchanged", same[0].Action)
	}
	if got := testutil.ToFloat64(vipAllocations) - before; got != 2 {
		t.Errorf("re-casts allocated VIPs: counter moved by %v", got)
	}
	snap := n.view.Snapshot()
	e, ok := snap.ServiceByVIP(res[0].VIP)
	if !ok || e.Value.Spec.Name != "api" || e.Value.Spec.Image != "api:2" {
		t.Errorf("view does not map %s to the updated api: %+v", res[0].VIP, e.Value)
	}
}

func TestVIPsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	lg, err := badger.Open(dir, badger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := Bootstrap(ctx, lg, netip.MustParsePrefix("10.96.0.0/16")); err != nil {
		t.Fatal(err)
	}
	view := NewView(lg, ViewOptions{})
	vctx, cancel := context.WithCancel(ctx)
	go view.Run(vctx)
	res, _, err := NewController(lg, view, ControllerOptions{}).Cast(ctx, []SourceFile{svcYAML("api", "default", "")})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	lg.Close()

	n := startNode(t, openLog(t, dir), ViewOptions{})
	again := cast(t, n, svcYAML("api", "default", ""))
	if again[0].VIP != res[0].VIP {
		t.Fatalf("VIP changed across restart: %s → %s", res[0].VIP, again[0].VIP)
	}
}

func TestBootstrapRefusesADifferentCIDR(t *testing.T) {
	lg := openLog(t, t.TempDir())
	ctx := context.Background()
	if err := Bootstrap(ctx, lg, netip.MustParsePrefix("10.96.0.0/16")); err != nil {
		t.Fatal(err)
	}
	if err := Bootstrap(ctx, lg, netip.MustParsePrefix("10.96.0.0/16")); err != nil {
		t.Fatalf("same CIDR again: %v", err)
	}
	err := Bootstrap(ctx, lg, netip.MustParsePrefix("10.200.0.0/16"))
	if err == nil || !strings.Contains(err.Error(), "--cluster-cidr 10.96.0.0/16") {
		t.Fatalf("want a refusal that names the stored CIDR and the flag, got %v", err)
	}
}

func TestParseClusterCIDR(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{"10.96.0.0/16", ""},
		{"100.64.0.0/12", ""},
		{"172.20.0.0/16", ""},
		{"192.168.10.0/24", ""},
		{"8.8.0.0/16", "not private"},
		{"10.96.0.1/16", "did you mean 10.96.0.0/16"},
		{"fd00::/64", "IPv4"},
		{"10.0.0.0/31", "too small"},
		{"banana", "not a CIDR"},
		{"0.0.0.0/0", "not private"},
	} {
		_, err := ParseClusterCIDR(tc.in)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: got %v, want error containing %q", tc.in, err, tc.err)
		}
	}
}

func TestDeletedServiceGetsItsVIPBackWithinHold(t *testing.T) {
	n := newNode(t, "10.96.0.0/16")
	ctx := context.Background()
	first := cast(t, n, svcYAML("api", "default", ""))[0].VIP
	if _, err := n.ctl.DeleteService(ctx, NamespacedName{"default", "api"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.view.Snapshot().Service(NamespacedName{"default", "api"}); ok {
		t.Fatal("service still in the view after delete")
	}
	n.advance(30 * time.Minute)
	if got := cast(t, n, svcYAML("api", "default", ""))[0].VIP; got != first {
		t.Fatalf("re-cast within the hold got %s, want its old VIP %s", got, first)
	}
	if _, err := n.ctl.DeleteService(ctx, NamespacedName{"default", "api"}); !errors.Is(err, nil) {
		t.Fatal(err)
	}
	if _, err := n.ctl.DeleteService(ctx, NamespacedName{"default", "api"}); KindOf(err) != KindNotFound {
		t.Fatalf("deleting twice: want not found, got %v", err)
	}
}

func TestHeldVIPsAreNotGivenAwayUntilTheHoldExpires(t *testing.T) {
	// A /30 has two host addresses.
	n := newNode(t, "10.96.0.0/30")
	ctx := context.Background()
	cast(t, n, svcYAML("a", "default", ""), svcYAML("b", "default", ""))
	if _, err := n.ctl.DeleteService(ctx, NamespacedName{"default", "a"}); err != nil {
		t.Fatal(err)
	}
	_, _, err := n.ctl.Cast(ctx, []SourceFile{svcYAML("c", "default", "")})
	if KindOf(err) != KindExhausted || !strings.Contains(err.Error(), "held") {
		t.Fatalf("while a's VIP is held: want exhausted, got %v", err)
	}
	n.advance(2 * time.Hour)
	if res := cast(t, n, svcYAML("c", "default", "")); !res[0].VIP.IsValid() {
		t.Fatal("no VIP after the hold expired")
	}
}

func TestExhaustionIsAClearError(t *testing.T) {
	n := newNode(t, "10.96.0.0/30")
	_, _, err := n.ctl.Cast(context.Background(), []SourceFile{svcYAML("a", "default", ""), svcYAML("b", "default", ""), svcYAML("c", "default", "")})
	if KindOf(err) != KindExhausted || !strings.Contains(err.Error(), "10.96.0.0/30") {
		t.Fatalf("want an exhausted error naming the CIDR, got %v", err)
	}
	if got := n.view.Snapshot().NumServices(); got != 0 {
		t.Fatalf("a failed cast wrote %d services; it must write none", got)
	}
}

// Two controllers over one log stand for two nodes once Raft lands: racing
// for the last free VIP, exactly one may win.
func TestRaceForTheLastVIP(t *testing.T) {
	for round := 0; round < 10; round++ {
		lg := openLog(t, t.TempDir())
		ctx := context.Background()
		if err := Bootstrap(ctx, lg, netip.MustParsePrefix("10.96.0.0/30")); err != nil {
			t.Fatal(err)
		}
		a, b := startNode(t, lg, ViewOptions{}), startNode(t, lg, ViewOptions{})
		cast(t, a, svcYAML("first", "default", ""))
		if err := b.view.WaitFor(ctx, lg.Tail()); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		vips := make([]netip.Addr, 2)
		for i, n := range []*testNode{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, _, err := n.ctl.Cast(ctx, []SourceFile{svcYAML(fmt.Sprintf("racer%d", i), "default", "")})
				errs[i] = err
				if err == nil {
					vips[i] = res[0].VIP
				}
			}()
		}
		wg.Wait()
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case KindOf(err) != KindExhausted:
				t.Fatalf("round %d: loser %d got %v, want an exhausted error", round, i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d casts won the last VIP (errors %v, vips %v)", round, wins, errs, vips)
		}
		if err := a.view.WaitFor(ctx, lg.Tail()); err != nil {
			t.Fatal(err)
		}
		if got := a.view.Snapshot().NumServices(); got != 2 {
			t.Fatalf("round %d: %d services stored, want 2", round, got)
		}
	}
}

func TestInstancesBecomeEndpoints(t *testing.T) {
	n := newNode(t, "10.96.0.0/16")
	ctx := context.Background()
	cast(t, n, svcYAML("api", "default", ""))
	api := NamespacedName{"default", "api"}
	published := func() float64 { return testutil.ToFloat64(endpointsPublished.WithLabelValues("api", "default")) }
	start := published()
	addrs := func() []string {
		e, ok := n.view.Snapshot().Endpoints(api)
		if !ok {
			t.Fatal("no endpoints row for api")
		}
		var out []string
		for _, a := range e.Value.Addresses {
			for _, p := range e.Value.Ports {
				out = append(out, fmt.Sprintf("%s:%d", a.IP, p.TargetPort))
			}
		}
		return out
	}
	mustSeq := func(_ uint64, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mustSeq(n.ctl.RegisterInstance(ctx, Instance{ID: "api-1", Service: "api", Node: "node-1", IP: netip.MustParseAddr("10.88.1.2"), Ready: true}))
	mustSeq(n.ctl.RegisterInstance(ctx, Instance{ID: "api-2", Service: "api", Node: "node-1", IP: netip.MustParseAddr("10.88.1.3"), Ready: false}))
	if got := addrs(); fmt.Sprint(got) != "[10.88.1.2:80]" {
		t.Fatalf("endpoints %v, want only the ready instance on its target port", got)
	}
	mustSeq(n.ctl.SetInstanceReady(ctx, "api-2", true))
	if got := addrs(); fmt.Sprint(got) != "[10.88.1.2:80 10.88.1.3:80]" {
		t.Fatalf("after ready: %v", got)
	}
	mustSeq(n.ctl.SetInstanceReady(ctx, "api-2", true)) // no change, no rewrite
	mustSeq(n.ctl.SetInstanceReady(ctx, "api-1", false))
	if got := addrs(); fmt.Sprint(got) != "[10.88.1.3:80]" {
		t.Fatalf("after unready: %v", got)
	}
	mustSeq(n.ctl.DeregisterInstance(ctx, "api-2"))
	if got := addrs(); len(got) != 0 {
		t.Fatalf("after deregister: %v", got)
	}
	if _, ok := n.view.Snapshot().Instance("api-2"); ok {
		t.Fatal("deregistered instance still in the view")
	}
	// register(1) + ready(2) + unready(1) + deregister(2) = 4 rewrites; the unready
	// registration and the no-op ready rewrite nothing.
	if got := published() - start; got != 4 {
		t.Fatalf("rune_endpoints_published_total moved by %v, want 4", got)
	}
	// A port change rewrites the endpoints' ports and keeps the addresses.
	mustSeq(n.ctl.SetInstanceReady(ctx, "api-1", true))
	cast(t, n, SourceFile{Name: "api.yaml", Data: []byte("service:\n  name: api\n  ports:\n    - name: http\n      port: 8080\n      targetPort: 9090\n")})
	if got := addrs(); fmt.Sprint(got) != "[10.88.1.2:9090]" {
		t.Fatalf("after port change: %v", got)
	}
	// Deleting the service removes its instances too.
	mustSeq(n.ctl.DeleteService(ctx, api))
	if got := n.view.Snapshot().NumInstances(); got != 0 {
		t.Fatalf("%d instances left after deleting their service", got)
	}
}

func TestInstanceErrors(t *testing.T) {
	n := newNode(t, "10.96.0.0/16")
	ctx := context.Background()
	cast(t, n, svcYAML("api", "default", ""))
	if _, err := n.ctl.RegisterInstance(ctx, Instance{ID: "x-1", Service: "api", Node: "n1", IP: netip.MustParseAddr("10.88.0.9"), Ready: true}); err != nil {
		t.Fatal(err)
	}
	tail := n.log.Tail()
	for _, tc := range []struct {
		name string
		in   Instance
		kind Kind
		msg  string
	}{
		{"unknown service", Instance{ID: "a-1", Service: "nope", Node: "n1", IP: netip.MustParseAddr("10.88.0.1")}, KindNotFound, `service "default/nope" not found`},
		{"ip in cluster cidr", Instance{ID: "a-1", Service: "api", Node: "n1", IP: netip.MustParseAddr("10.96.0.5")}, KindInvalid, "reserved for VIPs"},
		{"ip taken", Instance{ID: "a-1", Service: "api", Node: "n1", IP: netip.MustParseAddr("10.88.0.9")}, KindConflict, "already registered to instance x-1"},
		{"bad id", Instance{ID: "A B", Service: "api", Node: "n1", IP: netip.MustParseAddr("10.88.0.1")}, KindInvalid, `id "A B"`},
		{"bad node", Instance{ID: "a-1", Service: "api", Node: "Node_1", IP: netip.MustParseAddr("10.88.0.1")}, KindInvalid, `node "Node_1"`},
		{"no ip", Instance{ID: "a-1", Service: "api", Node: "n1"}, KindInvalid, "ip must be an IPv4"},
	} {
		_, err := n.ctl.RegisterInstance(ctx, tc.in)
		if KindOf(err) != tc.kind || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got %v, want kind %d containing %q", tc.name, err, tc.kind, tc.msg)
		}
	}
	if _, err := n.ctl.SetInstanceReady(ctx, "ghost", true); KindOf(err) != KindNotFound {
		t.Errorf("ready on an unknown instance: %v", err)
	}
	if n.log.Tail() != tail {
		t.Fatalf("rejected requests wrote to the log (tail %d → %d)", tail, n.log.Tail())
	}
}

func TestBadCastWritesNothing(t *testing.T) {
	n := newNode(t, "10.96.0.0/16")
	tail := n.log.Tail()
	_, _, err := n.ctl.Cast(context.Background(), []SourceFile{
		svcYAML("good", "default", ""),
		{Name: "bad.yaml", Data: []byte("service:\n  name: bad\n  netwrokPolicy: {}\n")},
	})
	if KindOf(err) != KindInvalid || !strings.Contains(err.Error(), "bad.yaml:3") || !strings.Contains(err.Error(), "netwrokPolicy") {
		t.Fatalf("want an invalid-spec error naming bad.yaml:3 and the field, got %v", err)
	}
	if n.log.Tail() != tail {
		t.Fatal("a rejected cast wrote to the log")
	}
}

func TestViewFailsClosedWhenTheWatchStalls(t *testing.T) {
	lg := openLog(t, t.TempDir())
	if err := Bootstrap(context.Background(), lg, netip.MustParsePrefix("10.96.0.0/16")); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, lg, ViewOptions{StaleBudget: 300 * time.Millisecond})
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("not %s after 10s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitUntil("loaded", n.view.Loaded)
	if n.view.Stale() {
		t.Fatal("stale right after loading")
	}
	// Paused until resumed below, however slow this machine is.
	n.view.PauseFor(time.Hour)
	// While paused, writes are not applied and the lag grows past the budget.
	seq, err := lg.Propose(context.Background(), []orderedlog.Op{orderedlog.Put("unrelated/key", []byte("x"))})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil("stale while paused", n.view.Stale)
	if n.view.Lag() < 300*time.Millisecond {
		t.Fatalf("stale with a lag of %s, under the budget", n.view.Lag())
	}
	if testutil.ToFloat64(staleSeconds) < 0.3 {
		t.Fatal("rune_dataplane_stale_seconds does not show the lag")
	}
	n.view.PauseFor(0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.view.WaitFor(ctx, seq); err != nil {
		t.Fatalf("view did not recover after the pause: %v", err)
	}
	for n.view.Stale() && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if n.view.Stale() {
		t.Fatal("still stale after recovering")
	}
}

// Every malformed spec is refused by a cast with its place named, and the
// store does not move, even with a good file in the same cast.
func TestMalformedCastsLeaveTheStoreUnchanged(t *testing.T) {
	n := newNode(t, "10.96.0.0/16")
	cast(t, n, svcYAML("existing", "default", ""))
	tail := n.log.Tail()
	if len(malformedSpecs) < 30 {
		t.Fatalf("only %d malformed cases; the acceptance asks for at least 30", len(malformedSpecs))
	}
	for _, tc := range malformedSpecs {
		_, _, err := n.ctl.Cast(context.Background(), []SourceFile{svcYAML("good", "default", ""), {Name: "bad.yaml", Data: []byte(tc.input)}})
		place := "bad.yaml"
		if tc.line > 0 {
			place = fmt.Sprintf("bad.yaml:%d", tc.line)
		}
		if KindOf(err) != KindInvalid || !strings.Contains(err.Error(), place) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s: got %v, want an invalid-spec error naming %s and %q", tc.name, err, place, tc.path)
		}
	}
	if n.log.Tail() != tail {
		t.Fatalf("malformed casts wrote to the log (tail %d → %d)", tail, n.log.Tail())
	}
	if _, ok := n.view.Snapshot().Service(NamespacedName{"default", "good"}); ok {
		t.Fatal("the good file of a refused cast was written")
	}
}

// Concurrent writers — instance flips of several services, several
// instances each, racing re-casts that change the ports — leave every
// endpoints row equal to its service's ready instances × current ports.
func TestConcurrentWritesKeepEndpointsExact(t *testing.T) {
	n := newNode(t, "10.96.0.0/16")
	ctx := context.Background()
	const services, perService, rounds = 4, 4, 20
	port := func(round int) string {
		return fmt.Sprintf("  ports:\n    - name: http\n      port: 8080\n      targetPort: %d\n", 9000+round)
	}
	specOf := func(s, round int) SourceFile {
		return SourceFile{Name: "s.yaml", Data: []byte(fmt.Sprintf("service:\n  name: s%d\n%s", s, port(round)))}
	}
	for s := 0; s < services; s++ {
		if _, _, err := n.ctl.Cast(ctx, []SourceFile{specOf(s, 0)}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < perService; i++ {
			in := Instance{ID: fmt.Sprintf("s%d-%d", s, i), Service: fmt.Sprintf("s%d", s), Node: "n1", IP: netip.AddrFrom4([4]byte{172, 16, byte(s), byte(i + 1)})}
			if _, err := n.ctl.RegisterInstance(ctx, in); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, services*perService+services)
	for s := 0; s < services; s++ {
		for i := 0; i < perService; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("s%d-%d", s, i)
				for r := 0; r < rounds; r++ {
					// Each instance ends ready exactly when i is even.
					if _, err := n.ctl.SetInstanceReady(ctx, id, (r+i)%2 == 1); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 1; r <= rounds; r++ {
				if _, _, err := n.ctl.Cast(ctx, []SourceFile{specOf(s, r)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	snap := n.view.Snapshot()
	for s := 0; s < services; s++ {
		ep, ok := snap.Endpoints(NamespacedName{"default", fmt.Sprintf("s%d", s)})
		if !ok {
			t.Fatalf("s%d has no endpoints", s)
		}
		var got []string
		for _, a := range ep.Value.Addresses {
			got = append(got, a.Instance)
		}
		var want []string
		for i := 0; i < perService; i += 2 {
			want = append(want, fmt.Sprintf("s%d-%d", s, i))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || len(ep.Value.Ports) != 1 || ep.Value.Ports[0].TargetPort != 9000+rounds {
			t.Fatalf("s%d endpoints %v ports %+v, want %v on target port %d", s, got, ep.Value.Ports, want, 9000+rounds)
		}
	}
}
