package policy

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
)

// revokeBound is how soon every node must stop honouring a removed
// instance's identity: the correctness bound, not a performance
// target (a View change is one table patch, normally well under 10 ms).
const revokeBound = time.Second

// nodeEngines runs, for each node name, its own View of c's log and an
// Engine on it: the nodes of one cluster, as runed runs them.
func nodeEngines(t *testing.T, c *testCluster, nodes ...string) map[string]*Engine {
	t.Helper()
	out := map[string]*Engine{}
	for _, node := range nodes {
		view := cluster.NewView(c.Log, cluster.ViewOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); view.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		e := NewEngine(view, node, EngineOptions{})
		runEngine(t, e)
		out[node] = e
	}
	return out
}

// tableLog records every Tables an Engine publishes, so a test can check
// each state a decision could have seen, not just the last.
type tableLog struct {
	mu     sync.Mutex
	tables []*Tables
}

func watchTables(t *testing.T, e *Engine) *tableLog {
	l := &tableLog{tables: []*Tables{e.Tables()}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for seq := e.Tables().Seq + 1; ; {
			if e.WaitFor(ctx, seq) != nil {
				return
			}
			tb := e.Tables()
			l.mu.Lock()
			l.tables = append(l.tables, tb)
			l.mu.Unlock()
			seq = tb.Seq + 1
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

func (l *tableLog) all() []*Tables {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Tables(nil), l.tables...)
}

// TestRemovalRevokesIdentityOnEveryNode: web's instance on n2 is admitted
// to api by name on every node; once it is deregistered every node denies
// its address within revokeBound of the write, and when another service's
// instance (on n3) registers the released address, no node's tables ever
// gave that address web's rights after the release.
func TestRemovalRevokesIdentityOnEveryNode(t *testing.T) {
	c := newTestCluster(t, cluster.ViewOptions{})
	c.Cast(t, apiDoc("web"), webDoc, otherDoc)
	c.instance(t, "api-1", "default", "api", "n1", "172.17.1.40")
	c.instance(t, "web-1", "default", "web", "n2", webIP.String())
	engines := nodeEngines(t, c, "n1", "n2", "n3")
	for node, e := range engines {
		waitFor(t, node+" to admit web's instance on n2 by name", func() bool {
			return e.Ingress(webIP, apiName, 8080, cluster.TCP).Allowed
		})
	}
	logs := map[string]*tableLog{}
	for node, e := range engines {
		logs[node] = watchTables(t, e)
	}

	start := time.Now()
	release, err := c.Ctl.DeregisterInstance(context.Background(), "web-1")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	took := map[string]time.Duration{}
	var mu sync.Mutex
	for node, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e.Ingress(webIP, apiName, 8080, cluster.TCP).Allowed {
				if time.Since(start) > revokeBound {
					break
				}
				time.Sleep(time.Millisecond)
			}
			mu.Lock()
			took[node] = time.Since(start)
			mu.Unlock()
		}()
	}
	wg.Wait()
	for node, d := range took {
		if d > revokeBound {
			t.Errorf("%s still admits the removed instance's address %v after the write", node, d)
		}
	}
	t.Logf("write → denied: %v", took)

	claim, err := c.Ctl.RegisterInstance(context.Background(), cluster.Instance{
		ID: "other-1", Service: "other", Namespace: "default", Node: "n3", IP: webIP, Ready: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for node, e := range engines {
		if err := e.WaitFor(ctx, claim); err != nil {
			t.Fatal(err)
		}
		if id, ok := e.Tables().ids.Get(webIP); !ok || id.service.Name != "other" {
			t.Errorf("%s: %s is %v (%v), want other's", node, webIP, id, ok)
		}
		if v := e.Ingress(webIP, apiName, 8080, cluster.TCP); v.Allowed {
			t.Errorf("%s admits other's instance at web's old address: %+v", node, v)
		}
		for _, tb := range logs[node].all() {
			id, ok := tb.ids.Get(webIP)
			if tb.Seq >= release && ok && id.service.Name == "web" {
				t.Errorf("%s: tables at seq %d (release at %d) still give %s web's identity", node, tb.Seq, release, webIP)
			}
		}
	}
}

// TestIdentityFromEveryNode: the same service peer admits web's
// instances wherever they run, and only web's; egress is judged for the
// local node's sources only.
func TestIdentityFromEveryNode(t *testing.T) {
	c := newTestCluster(t, cluster.ViewOptions{})
	c.Cast(t, apiDoc("web"), webDoc, otherDoc)
	for i, node := range []string{"n1", "n2", "n3"} {
		c.instance(t, "web-"+node, "default", "web", node, fmt.Sprintf("172.17.%d.10", i+1))
		c.instance(t, "other-"+node, "default", "other", node, fmt.Sprintf("172.17.%d.20", i+1))
	}
	tables := Compile(c.View.Snapshot(), "n1")
	for i := range 3 {
		web, other := netip.MustParseAddr(fmt.Sprintf("172.17.%d.10", i+1)), netip.MustParseAddr(fmt.Sprintf("172.17.%d.20", i+1))
		if v := tables.Ingress(web, apiName, 8080, cluster.TCP); !v.Allowed || v.Rule != 0 {
			t.Errorf("web at %s → api: %+v, want rule 0", web, v)
		}
		if v := tables.Ingress(other, apiName, 8080, cluster.TCP); v.Allowed {
			t.Errorf("other at %s → api: %+v, want denied", other, v)
		}
		// other's egress allows api only; n1 judges its own instance alone.
		v := tables.Egress(other, nobodyIP, 80, cluster.TCP)
		if local := i == 0; v.Allowed == local {
			t.Errorf("egress of other at %s (local %v) to %s: %+v", other, local, nobodyIP, v)
		}
	}
	if got := tables.Identities(); got != 6 {
		t.Errorf("Identities = %d, want 6", got)
	}
	if got := tables.LocalInstances(); got != 2 {
		t.Errorf("LocalInstances = %d, want 2", got)
	}
}
