package policy

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/runenet/runenet/cluster"
)

func apiDoc(from string) string {
	return `
service:
  name: api
  ports: [{name: http, port: 8080}]
  networkPolicy:
    ingress:
      - from: [{service: ` + from + `}]
        ports: [http]
`
}

const webDoc = `
service:
  name: web
  ports: [{name: http, port: 80}]
`

const otherDoc = `
service:
  name: other
  ports: [{name: http, port: 80}]
  networkPolicy:
    egress:
      - to: [{service: api}]
`

// runEngine runs e until stop is called or the test ends.
func runEngine(t testing.TB, e *Engine) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var (
	apiName  = cluster.NamespacedName{Namespace: "default", Name: "api"}
	webName  = cluster.NamespacedName{Namespace: "default", Name: "web"}
	webIP    = netip.MustParseAddr("172.17.0.10")
	otherIP  = netip.MustParseAddr("172.17.0.20")
	nobodyIP = netip.MustParseAddr("203.0.113.9")
)

// webAndOtherEngine casts api (admitting web), web and other with one local
// instance each, and returns a running engine that has caught up with it.
func webAndOtherEngine(t *testing.T, c *testCluster) *Engine {
	t.Helper()
	c.Cast(t, apiDoc("web"), webDoc, otherDoc)
	c.instance(t, "web-1", "default", "web", localNode, webIP.String())
	seq, err := c.Ctl.RegisterInstance(context.Background(), cluster.Instance{ID: "other-1", Service: "other", Namespace: "default", Node: localNode, IP: otherIP, Ready: true})
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(c.View, localNode, EngineOptions{})
	runEngine(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestPolicyUpdateFlipsVerdict: one cast through the controller, and the
// next decision once the engine has caught up follows the new policy.
func TestPolicyUpdateFlipsVerdict(t *testing.T) {
	c := newTestCluster(t, cluster.ViewOptions{})
	e := webAndOtherEngine(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	check := func(src netip.Addr, want bool) {
		t.Helper()
		if v := e.Ingress(src, apiName, 8080, cluster.TCP); v.Allowed != want {
			t.Fatalf("ingress from %s: %+v, want allowed=%v", src, v, want)
		}
	}
	check(webIP, true)
	check(otherIP, false)

	start := time.Now()
	seq := c.Cast(t, apiDoc("other"))
	if err := e.WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
	check(webIP, false)
	check(otherIP, true)
	t.Logf("cast → enforced in %v", time.Since(start))
	if !e.Ready() {
		t.Error("engine not ready after loading the view")
	}
	if got := testutil.ToFloat64(localInstances); got != 2 {
		t.Errorf("rune_policy_local_instances = %v, want 2", got)
	}
}

// TestStaleFailsClosed: past the stale budget, policy-bearing services
// refuse new connections in the direction their policy covers; services
// without policy keep working.
func TestStaleFailsClosed(t *testing.T) {
	c := newTestCluster(t, cluster.ViewOptions{StaleBudget: 50 * time.Millisecond})
	e := webAndOtherEngine(t, c)
	apiVIP := c.vip(t, "default", "api")
	webVIP := c.vip(t, "default", "web")
	if v := e.Ingress(webIP, apiName, 8080, cluster.TCP); !v.Allowed {
		t.Fatalf("before the stall: %+v", v)
	}
	if v := e.Egress(otherIP, apiVIP, 8080, cluster.TCP); !v.Allowed {
		t.Fatalf("before the stall: %+v", v)
	}

	// Paused until resumed below, however slow this machine is.
	c.View.PauseFor(time.Hour)
	waitFor(t, "the paused view to go stale", c.View.Stale)
	before := testutil.ToFloat64(drops.WithLabelValues("api", "default", "default/api", ReasonStale))
	for _, tc := range []struct {
		name    string
		v       Verdict
		allowed bool
		reason  string
	}{
		{"ingress to a policy-bearing service", e.Ingress(webIP, apiName, 8080, cluster.TCP), false, ReasonStale},
		{"edge to a policy-bearing service", e.Edge(nobodyIP, apiName, 8080), false, ReasonStale},
		{"egress of a policy-bearing service", e.Egress(otherIP, apiVIP, 8080, cluster.TCP), false, ReasonStale},
		{"ingress to a service without policy", e.Ingress(otherIP, webName, 80, cluster.TCP), true, ReasonNoPolicy},
		{"egress of a service without egress policy", e.Egress(webIP, webVIP, 80, cluster.TCP), true, ReasonNoPolicy},
		{"ingress to a service with only an egress policy", e.Ingress(webIP, cluster.NamespacedName{Namespace: "default", Name: "other"}, 80, cluster.TCP), true, ReasonNoPolicy},
	} {
		if tc.v.Allowed != tc.allowed || tc.v.Reason != tc.reason {
			t.Errorf("%s: %+v, want allowed=%v reason=%s", tc.name, tc.v, tc.allowed, tc.reason)
		}
		if !tc.v.Allowed {
			CountDrop(tc.v)
		}
	}
	if after := testutil.ToFloat64(drops.WithLabelValues("api", "default", "default/api", ReasonStale)); after != before+2 {
		t.Errorf("rune_policy_drops_total{service=api,reason=stale} went %v → %v, want +2", before, after)
	}
	// Once the watch resumes, decisions recover without a restart.
	c.View.PauseFor(0)
	waitFor(t, "the view to recover", func() bool { return !c.View.Stale() })
	if v := e.Ingress(webIP, apiName, 8080, cluster.TCP); !v.Allowed {
		t.Errorf("after recovery: %+v", v)
	}
}

// TestCompileReusesUnchangedPolicies: a recompile shares the compiled
// policies whose records did not move, and recompiles a service whose
// ports changed under an unchanged policy (named ports resolve anew).
func TestCompileReusesUnchangedPolicies(t *testing.T) {
	c := newTestCluster(t, cluster.ViewOptions{})
	c.Cast(t, apiDoc("web"), webDoc, otherDoc)
	c.instance(t, "web-1", "default", "web", localNode, webIP.String())
	s1 := c.View.Snapshot()
	t1 := compile(s1, s1.Seq, localNode, nil)

	// api's http moves to 8081; its policy record (ports: [http]) is unchanged.
	c.Cast(t, strings.Replace(apiDoc("web"), "port: 8080", "port: 8081", 1))
	s2 := c.View.Snapshot()
	t2 := compile(s2, s2.Seq, localNode, t1)
	other := cluster.NamespacedName{Namespace: "default", Name: "other"}
	if t2.service(other) != t1.service(other) {
		t.Error("other's policy was recompiled though nothing of it changed")
	}
	if v := t2.Ingress(webIP, apiName, 8081, cluster.TCP); !v.Allowed {
		t.Errorf("web → api:8081 after the port move: %+v", v)
	}
	if v := t2.Ingress(webIP, apiName, 8080, cluster.TCP); v.Allowed {
		t.Errorf("web → api:8080 after the port move: %+v", v)
	}
}

// A deleted service's drop counters leave /metrics.
func TestDeletedServiceDropsForgotten(t *testing.T) {
	c := newTestCluster(t, cluster.ViewOptions{})
	e := webAndOtherEngine(t, c)
	v := e.Ingress(otherIP, apiName, 8080, cluster.TCP)
	if v.Allowed {
		t.Fatalf("other → api allowed: %+v", v)
	}
	counter := func() float64 {
		return testutil.ToFloat64(drops.WithLabelValues(apiName.Name, apiName.Namespace, v.Policy, v.Reason))
	}
	CountDrop(v)
	if n := counter(); n != 1 {
		t.Fatalf("drop counter %v after one drop", n)
	}
	seq, err := c.Ctl.DeleteService(context.Background(), apiName)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
	if n := counter(); n != 0 {
		t.Errorf("the deleted service's drop counter reads %v; want it gone (a fresh 0)", n)
	}
}

// TestCatchUp: an engine that does not compile the seq asked for gives up
// (the caller then fails closed) instead of holding up the data path; a
// running one is caught up when it returns.
func TestCatchUp(t *testing.T) {
	c := newTestCluster(t, cluster.ViewOptions{})
	c.Cast(t, webDoc)
	e := NewEngine(c.View, localNode, EngineOptions{}) // not run: its tables stay where they are
	if !e.CatchUp(context.Background(), e.Tables().Seq) {
		t.Error("CatchUp to the tables' own seq failed")
	}
	later := c.Cast(t, otherDoc)
	if e.CatchUp(context.Background(), later) {
		t.Fatalf("an engine that compiles nothing caught up to seq %d (tables at %d)", later, e.Tables().Seq)
	}
	runEngine(t, e)
	waitFor(t, "the engine to compile the later cast", func() bool { return e.CatchUp(context.Background(), later) })
	if got := e.Tables().Seq; got < later {
		t.Errorf("tables at %d after catching up to %d", got, later)
	}
}
