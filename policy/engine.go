package policy

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/runenet/runenet/cluster"
)

// Package-level promauto registers each metric on the default registry
// exactly once per process, however many Engines tests create.
var (
	drops = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "rune_policy_drops_total",
		Help: "Connections (proxy) and packets (kernel) dropped by network policy.",
	}, []string{"service", "namespace", "policy", "reason"})
	localInstances = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "rune_policy_local_instances",
		Help: "Container-IP rows of this node: the instances whose egress and ingress this node's kernel guards.",
	})
	identities = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "rune_policy_identities",
		Help: "Instance addresses of every node that carry a service identity for policy.",
	})
	compileSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "rune_policy_compile_duration_seconds",
		Help:    "Time to compile a snapshot's policies into rule tables.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	})
	kernelSyncErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "rune_policy_kernel_sync_errors_total",
		Help: "Failed nftables installs of the policy chains; retried on the next poll.",
	})
)

// Kernel is the in-kernel enforcer (NFT on Linux). Sync installs the plan of
// t; stale asks it to deny all new connections of policy-bearing services.
type Kernel interface {
	Sync(t *Tables, stale bool) error
	// Drops returns the packets dropped per policy since the previous call.
	Drops() ([]KernelDrop, error)
	Close() error
}

// KernelDrop is one policy's kernel drop count over a poll interval.
type KernelDrop struct {
	Service cluster.NamespacedName
	Packets uint64
}

// EngineOptions tune an Engine.
type EngineOptions struct {
	// Kernel, if set, mirrors every compiled table into the kernel.
	Kernel Kernel
	// Poll is how often kernel drop counters are read and the stale state is
	// re-checked for the kernel. Default 1s.
	Poll   time.Duration
	Logger *slog.Logger
}

// Engine keeps the current Tables of one node in step with a View. Decisions
// are lock-free: one atomic load, then the immutable Tables.
type Engine struct {
	view   *cluster.View
	node   string
	opts   EngineOptions
	tables atomic.Pointer[Tables]
	ready  atomic.Bool
	// from is the snapshot the current tables were compiled from, so the
	// next compile can take only what changed since (touched by whoever
	// compiles: NewEngine, then Run).
	from *cluster.Snapshot

	mu      sync.Mutex
	swapped chan struct{} // closed and replaced on every new Tables
}

// NewEngine compiles the View's current snapshot; Run keeps it current.
func NewEngine(view *cluster.View, node string, opts EngineOptions) *Engine {
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	e := &Engine{view: view, node: node, opts: opts, swapped: make(chan struct{})}
	e.tables.Store(e.compile(view.Snapshot(), nil))
	return e
}

func (e *Engine) store(t *Tables) {
	e.tables.Store(t)
	e.mu.Lock()
	close(e.swapped)
	e.swapped = make(chan struct{})
	e.mu.Unlock()
}

// WaitFor blocks until the tables reflect log seq (or ctx ends): how a
// writer (`rune cast` then `rune policy check`) reads its own write.
func (e *Engine) WaitFor(ctx context.Context, seq uint64) error {
	for {
		e.mu.Lock()
		ch := e.swapped
		e.mu.Unlock()
		if e.tables.Load().Seq >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for policy tables to reach seq %d (at %d): %w", seq, e.tables.Load().Seq, ctx.Err())
		}
	}
}

// catchUp bounds CatchUp.
const catchUp = 250 * time.Millisecond

// CatchUp gives the tables a moment (at most 250ms) to reach seq, and
// returns whether they have. A data path calls it before installing the
// routes of seq: the engine follows the same View and usually compiles
// within a millisecond of it, and waiting keeps the data path from refusing
// policy-bearing services (not-ready) in between. A slower engine does not
// hold up routing: the caller then fails closed until it catches up.
func (e *Engine) CatchUp(ctx context.Context, seq uint64) bool {
	if e.tables.Load().Seq >= seq {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, catchUp)
	defer cancel()
	return e.WaitFor(ctx, seq) == nil
}

// compile compiles s: only the services that changed since the snapshot
// of prev when the View can tell, else all of them.
func (e *Engine) compile(s *cluster.Snapshot, prev *Tables) *Tables {
	start := time.Now()
	var t *Tables
	if c := s.ChangesSince(e.from); prev != nil && !c.Full {
		t = patch(s, e.from, s.Seq, e.node, prev, c.Services, len(c.Nodes) > 0)
		forgetDeleted(prev, s, c.Services)
	} else {
		t = compile(s, s.Seq, e.node, prev)
		if prev != nil {
			forgetDeleted(prev, s, nil)
		}
	}
	e.from = s
	compileSeconds.Observe(time.Since(start).Seconds())
	localInstances.Set(float64(t.LocalInstances()))
	identities.Set(float64(t.Identities()))
	return t
}

// forgetDeleted drops the drop counters of policy-bearing services of prev
// (among changed, nil: all) that no longer exist, so a deleted service
// leaves /metrics.
func forgetDeleted(prev *Tables, s *cluster.Snapshot, changed map[cluster.NamespacedName]struct{}) {
	forget := func(n cluster.NamespacedName) {
		if _, ok := s.Service(n); !ok && prev.service(n) != nil {
			drops.DeletePartialMatch(prometheus.Labels{"service": n.Name, "namespace": n.Namespace})
		}
	}
	if changed != nil {
		for n := range changed {
			forget(n)
		}
		return
	}
	prev.services.Range(func(n cluster.NamespacedName, _ *servicePolicy) bool { forget(n); return true })
}

// Tables returns the current rule tables (for listing and `policy check`).
func (e *Engine) Tables() *Tables { return e.tables.Load() }

// Ready reports whether the tables reflect a loaded View (and, with a
// kernel, are installed there): the readiness gate waits for it.
func (e *Engine) Ready() bool { return e.ready.Load() }

// Run recompiles on every View change and keeps the kernel in step until ctx
// ends, then releases the kernel enforcer (whose chains stay installed).
func (e *Engine) Run(ctx context.Context) error {
	k := e.opts.Kernel
	if k != nil {
		defer func() {
			e.collectKernelDrops()
			if err := k.Close(); err != nil {
				e.opts.Logger.Warn("policy: closing the nftables enforcer", "err", err)
			}
		}()
	}
	tick := time.NewTicker(e.opts.Poll)
	defer tick.Stop()
	var installed *Tables
	installedStale := false
	for {
		changed := e.view.Changed()
		t := e.tables.Load()
		if s := e.view.Snapshot(); s.Seq != t.Seq {
			t = e.compile(s, t)
			e.store(t)
		}
		stale := e.view.Stale()
		// Not before the View has loaded: tables of an unloaded View know no
		// policy, and installing them would replace what a runed that did
		// not shut down cleanly left (its last policy) with allow-all.
		if k != nil && e.view.Loaded() && (t != installed || stale != installedStale) {
			if installed != nil && stale == installedStale && t.kernelSeq == installed.kernelSeq {
				installed = t // the same plan is in place
			} else if err := k.Sync(t, stale); err != nil {
				kernelSyncErrors.Inc()
				e.opts.Logger.Error("policy: installing nftables chains; retrying", "seq", t.Seq, "err", err)
			} else {
				installed, installedStale = t, stale
			}
		}
		if e.view.Loaded() && (k == nil || installed == t) {
			e.ready.Store(true)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-tick.C:
			if k != nil {
				e.collectKernelDrops()
			}
		}
	}
}

func (e *Engine) collectKernelDrops() {
	ds, err := e.opts.Kernel.Drops()
	if err != nil {
		e.opts.Logger.Warn("policy: reading nftables drop counters", "err", err)
		return
	}
	for _, d := range ds {
		drops.WithLabelValues(d.Service.Name, d.Service.Namespace, d.Service.String(), ReasonKernel).Add(float64(d.Packets))
	}
}

// failClosed turns a verdict into a stale denial when the View is past its
// stale budget and the decision was made by a policy (no policy: the
// service never opted into enforcement, so staleness cannot change its answer).
func (e *Engine) failClosed(t *Tables, n cluster.NamespacedName, ingress bool, v Verdict) Verdict {
	if !e.view.Stale() {
		return v
	}
	if sp, ok := t.guards(n, ingress); ok {
		return Verdict{Service: sp.name, Policy: sp.label, Rule: -1, Reason: ReasonStale}
	}
	return v
}

// Ingress is Tables.Ingress, failing closed when the View is stale. The
// proxy calls it on accept.
func (e *Engine) Ingress(src netip.Addr, dst cluster.NamespacedName, port uint16, proto cluster.Protocol) Verdict {
	t := e.tables.Load()
	return e.failClosed(t, dst, true, t.Ingress(src, dst, port, proto))
}

// Edge is Tables.Edge, failing closed when the View is stale. The edge
// ingress calls it before forwarding a request's connection.
func (e *Engine) Edge(client netip.Addr, dst cluster.NamespacedName, port uint16) Verdict {
	t := e.tables.Load()
	return e.failClosed(t, dst, true, t.Edge(client, dst, port))
}

// Egress is Tables.Egress, failing closed when the View is stale. The proxy
// calls it when a local instance connects to a VIP.
func (e *Engine) Egress(src, dst netip.Addr, port uint16, proto cluster.Protocol) Verdict {
	t := e.tables.Load()
	v := t.Egress(src, dst, port, proto)
	from, ok := t.localSource(src)
	if !ok {
		return v
	}
	return e.failClosed(t, from, false, v)
}

// CountDrop records a connection the caller refused because of v.
func CountDrop(v Verdict) {
	drops.WithLabelValues(v.Service.Name, v.Service.Namespace, v.Policy, v.Reason).Inc()
}

// NotReady is the verdict for a new connection governed by n's policy while
// no rule tables as new as the caller's routes are in place: the caller
// cannot tell what n's policy says (it may be new), so it denies.
func NotReady(n cluster.NamespacedName) Verdict {
	return Verdict{Service: n, Policy: n.String(), Rule: -1, Reason: ReasonNotReady}
}
