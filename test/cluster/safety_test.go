package e2ecluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runenet/runenet/api"
	"github.com/runenet/runenet/internal/testseed"
	"github.com/runenet/runenet/orderedlog"
)

const (
	safetyClients = 8
	// leaderKills is how many times the safety test SIGKILLs the leader.
	leaderKills = 20
	// ackedBetweenKills is how many operations succeed between two kills.
	ackedBetweenKills = 40
	flipService       = "flip"
	svcNamespace      = "default"
)

func serviceDoc(name string) string {
	return fmt.Sprintf("service:\n  name: %s\n  ports:\n    - name: http\n      port: 80\n", name)
}

func flipID(client int) string { return fmt.Sprintf("flip-c%d", client) }

// castRec is one cast a client made: a new service.
type castRec struct {
	name string
	oc   outcome
	vip  netip.Addr
	seq  uint64
}

// flipRec is one ready flip a client made of its own instance.
type flipRec struct {
	ready bool
	oc    outcome
	seq   uint64
	// sure: every earlier flip of this client had a known outcome (or was
	// settled by a read since), so this one changed the flag and wrote the
	// batch at seq.
	sure bool
	// read: not a flip but a linearizable read that saw the flag as ready.
	read bool
}

// safetyClient is one of the writers: its records, in order.
type safetyClient struct {
	id    int
	rng   *rand.Rand
	casts []castRec
	flips []flipRec
	ready bool // the flag as this client last knew it
	sure  bool // no flip of unknown outcome since the last read
}

// TestSafety: 8 clients cast services, flip their instance's readiness and
// use the register (see regIP) through random nodes of three voters while
// the leader is SIGKILLed and restarted 20 times. Then every node holds
// every acknowledged write, the seqs are gapless and the histories and
// states identical on every node, the data each write derives (VIPs,
// endpoints) is consistent, and the register's history is linearizable.
func TestSafety(t *testing.T) { testSafety(t, NewCluster(t, 3)) }

func testSafety(t *testing.T, nt *Net) {
	rng := testseed.Rand(t)
	leader := nt.Leader(t, 10*time.Second)
	ctx := context.Background()
	for _, name := range []string{regService, flipService} {
		if _, err := leader.API.Cast(ctx, []api.CastFile{{Name: name + ".yaml", Data: serviceDoc(name)}}); err != nil {
			t.Fatal(err)
		}
	}
	clients := make([]*safetyClient, safetyClients)
	for i := range clients {
		clients[i] = &safetyClient{id: i, rng: rand.New(rand.NewPCG(rng.Uint64(), uint64(i))), sure: true}
		ip := netip.AddrFrom4([4]byte{192, 168, 50, byte(i + 1)})
		if _, err := leader.API.RegisterInstance(ctx, api.RegisterInstanceRequest{ID: flipID(i), Service: flipService, Node: "flip", IP: ip}); err != nil {
			t.Fatal(err)
		}
	}

	h := &regHistory{start: time.Now()}
	var stop atomic.Bool
	var acked atomic.Int64
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			for !stop.Load() {
				switch c.step(t, nt, h) {
				case outcomeOK:
					acked.Add(1)
				case outcomeNotApplied:
					// Most likely the node is down: not a busy loop against it.
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	// A failing kill loop stops the clients before the test ends.
	defer func() { stop.Store(true); wg.Wait() }()
	start := time.Now()
	for range leaderKills {
		// Writes between kills too, not only through elections.
		before := acked.Load()
		if !waitUntil(20*time.Second, func() bool { return acked.Load() >= before+ackedBetweenKills }) {
			t.Fatalf("fewer than %d writes acknowledged in 20s with every node up (%d)", ackedBetweenKills, acked.Load()-before)
		}
		l := nt.Leader(t, 30*time.Second)
		l.Kill(t)
		l.Restart(t)
	}
	killed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	t.Logf("%d leader kills and restarts in %v", leaderKills, killed.Round(time.Millisecond))

	for _, n := range nt.Nodes {
		n.WaitUp(t, 30*time.Second)
	}
	final := Converged(t, nt.Nodes, 30*time.Second)
	batches := SameHistories(t, nt.Nodes, final.Seq)
	t.Logf("all %d nodes at seq %d, gapless, with identical histories and states (%d bytes)", len(nt.Nodes), final.Seq, len(final.State))
	checkClients(t, nt, clients, batches)
	h.check(t)
	t.Logf("errors the clients saw:%s", &clientErrors)
}

// step makes one random operation through a random node.
func (c *safetyClient) step(t *testing.T, nt *Net, h *regHistory) outcome {
	n := nt.Nodes[c.rng.IntN(len(nt.Nodes))]
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	switch r := c.rng.IntN(10); {
	case r < 3:
		rec := castRec{name: fmt.Sprintf("s-c%d-%d", c.id, len(c.casts))}
		res, err := n.API.Cast(ctx, []api.CastFile{{Name: rec.name + ".yaml", Data: serviceDoc(rec.name)}})
		if rec.oc = classify(err); rec.oc == outcomeOK {
			rec.vip, rec.seq = res.Results[0].VIP, res.Seq
		}
		c.casts = append(c.casts, rec)
		return rec.oc
	case r < 6 && !c.sure:
		// Settle a flip of unknown outcome: once a linearizable read has
		// seen the flag, the earlier flip has applied or never will (the
		// read's barrier commits whatever a leader holds, and an entry of
		// an older term cannot commit after it). Outcomes are unknown when
		// the node died or its 10s retry window ran out, long after the
		// request left it.
		l, err := n.LinAPI.Instances(ctx, svcNamespace)
		if err != nil {
			return classify(err)
		}
		for _, in := range l.Items {
			if in.ID == flipID(c.id) {
				c.ready, c.sure = in.Ready, true
				c.flips = append(c.flips, flipRec{ready: in.Ready, oc: outcomeOK, read: true})
			}
		}
		return outcomeOK
	case r < 6:
		rec := flipRec{ready: !c.ready, sure: c.sure}
		seq, err := n.API.SetInstanceReady(ctx, flipID(c.id), rec.ready)
		switch rec.oc = classify(err); rec.oc {
		case outcomeOK:
			rec.seq, c.ready = seq, rec.ready
		case outcomeUnknown:
			c.sure = false
		}
		c.flips = append(c.flips, rec)
		return rec.oc
	default:
		return h.do(t, n, c.id, []regOp{regAcquire, regAcquire, regRelease, regRead}[c.rng.IntN(4)])
	}
}

// checkClients checks every acknowledged cast and flip against the final
// state and history (identical on every node by now).
func checkClients(t *testing.T, nt *Net, clients []*safetyClient, batches []orderedlog.Batch) {
	t.Helper()
	ctx := context.Background()
	n := nt.Nodes[0]
	svcs, err := n.API.Services(ctx, svcNamespace)
	if err != nil {
		t.Fatal(err)
	}
	vips := map[string]netip.Addr{}
	owner := map[netip.Addr]string{}
	for _, s := range svcs.Items {
		vips[s.Spec.Name] = s.VIP
		if o, ok := owner[s.VIP]; ok {
			t.Errorf("VIP %s is both %s's and %s's", s.VIP, o, s.Spec.Name)
		}
		owner[s.VIP] = s.Spec.Name
	}
	insts, err := n.API.Instances(ctx, svcNamespace)
	if err != nil {
		t.Fatal(err)
	}
	ready := map[string]bool{}
	for _, in := range insts.Items {
		ready[in.ID] = in.Ready
	}
	var acked, unknown, total int
	for _, c := range clients {
		for _, r := range c.casts {
			total++
			switch r.oc {
			case outcomeOK:
				acked++
				if got, ok := vips[r.name]; !ok || got != r.vip {
					t.Errorf("acknowledged cast of %s (VIP %s, seq %d): the cluster has VIP %v (present %v)", r.name, r.vip, r.seq, got, ok)
				}
				if !batchWrites(batches, r.seq, orderedlog.PrefixServices+svcNamespace+"/"+r.name) {
					t.Errorf("acknowledged cast of %s: batch %d does not write it", r.name, r.seq)
				}
			case outcomeUnknown:
				unknown++
			default:
				if _, ok := vips[r.name]; ok {
					t.Errorf("cast of %s was not applied (%v), yet the service exists", r.name, r.oc)
				}
			}
		}
		// The flag ends as the last acknowledged flip set it (or the last
		// read saw it), or as a flip of unknown outcome since may have.
		allowed := map[bool]bool{}
		last := false
		for _, r := range c.flips {
			if r.read {
				last, allowed = r.ready, map[bool]bool{}
				continue
			}
			total++
			switch r.oc {
			case outcomeOK:
				acked++
				last = r.ready
				if r.sure && !batchWrites(batches, r.seq, orderedlog.PrefixLocalInstances+"flip/"+flipID(c.id)) {
					t.Errorf("acknowledged flip of %s to ready=%v: batch %d does not write it", flipID(c.id), r.ready, r.seq)
				}
			case outcomeUnknown:
				unknown++
				allowed[r.ready] = true
			}
		}
		allowed[last] = true
		if got := ready[flipID(c.id)]; !allowed[got] {
			t.Errorf("%s ends ready=%v; its last acknowledged flip set %v and no flip of unknown outcome set %v", flipID(c.id), got, last, got)
		}
	}
	checkEndpoints(t, n, ready)
	t.Logf("casts and flips: %d made, %d acknowledged, %d of unknown outcome", total, acked, unknown)
}

// batchWrites says whether batch seq puts key.
func batchWrites(batches []orderedlog.Batch, seq uint64, key string) bool {
	if seq == 0 || seq > uint64(len(batches)) {
		return false
	}
	for _, op := range batches[seq-1].Ops {
		if op.Type == orderedlog.OpPut && op.Key == key {
			return true
		}
	}
	return false
}

// checkEndpoints: the flip service's endpoints list exactly its ready
// instances, however the concurrent flips interleaved.
func checkEndpoints(t *testing.T, n *Node, ready map[string]bool) {
	t.Helper()
	eps, err := n.API.Endpoints(context.Background(), svcNamespace)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, e := range eps.Items {
		if e.Service == flipService {
			for _, a := range e.Addresses {
				listed[a.Instance] = true
			}
		}
	}
	for i := range safetyClients {
		if id := flipID(i); listed[id] != ready[id] {
			t.Errorf("%s is ready=%v but the endpoints of %s list it: %v", id, ready[id], flipService, listed[id])
		}
	}
}
