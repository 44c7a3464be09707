package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/runenet/runenet/cluster"
)

// Source is what the data plane follows; *cluster.View is one.
type Source interface {
	Snapshot() *cluster.Snapshot
	Changed() <-chan struct{}
	Loaded() bool
	Stale() bool
	// Lag and StaleBudget time kernel forwarding's heartbeats.
	Lag() time.Duration
	StaleBudget() time.Duration
}

// Interceptor steers traffic for the redirected VIP:ports to the proxy and
// fences off the rest of the cluster CIDR. *NFT is the production one.
type Interceptor interface {
	Sync(cidr netip.Prefix, rs []Redirect) error
	// Patch replaces the redirects of rs' protocol and VIP (Port 0: none
	// any more) and leaves the others; it follows a successful Sync. An
	// alive > 0 is also a Heartbeat, in the same transaction.
	Patch(rs []Redirect, alive time.Duration) error
	// Heartbeat keeps kernel forwarding (Redirects with Endpoints) on for
	// ttl more; without heartbeats it stops, and the guard refuses.
	Heartbeat(ttl time.Duration) error
	// KeepSources sets which kernel-forwarded connections keep their
	// source address, from the next Sync on.
	KeepSources(SourceScope)
	Close() error
}

// DataplaneConfig configures Start. In dev mode (Proxy.Dev) there is no
// interception and NFT is ignored.
type DataplaneConfig struct {
	Proxy Config
	NFT   NFTConfig
	// Interceptor overrides the nftables one (tests); nil means NewNFT(NFT).
	Interceptor Interceptor
	// RetryInterval paces retries after a failed sync. Default 1s.
	RetryInterval time.Duration
	// Node is this node's name: its record's subnet is where kernel
	// forwarding masquerades hairpins (see SourceScope).
	Node string
}

// Dataplane keeps a Proxy and its interception in step with a Source.
type Dataplane struct {
	proxy *Proxy
	icpt  Interceptor
	src   Source
	log   *slog.Logger
	retry time.Duration
	node  string

	cancel context.CancelFunc
	done   chan struct{}

	// last is the snapshot fully put in place, nil until one is (or after
	// a failure): the next change is applied relative to it. kernelPorts
	// counts its kernel-forwarded ports. Only run touches them.
	last        *cluster.Snapshot
	kernelPorts int

	mu      sync.Mutex
	synced  bool          // a snapshot has been fully put in place
	applied uint64        // and this is its seq
	err     error         // the last sync's error, until one succeeds
	moved   chan struct{} // closed when applied moves; made by a waiter
}

// Start opens the proxy and the interception and follows src until Close.
func Start(src Source, cfg DataplaneConfig) (*Dataplane, error) {
	if cfg.Proxy.Stale == nil {
		cfg.Proxy.Stale = src.Stale
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = time.Second
	}
	if cfg.Proxy.Kernel && !cfg.Proxy.Dev && cfg.Interceptor == nil && cfg.NFT.NetNS == 0 {
		if err := checkForwarding(); err != nil {
			return nil, err
		}
	}
	p, err := New(cfg.Proxy)
	if err != nil {
		return nil, err
	}
	icpt := cfg.Interceptor
	if icpt == nil && !cfg.Proxy.Dev {
		if icpt, err = newInterceptor(cfg.NFT); err != nil {
			p.Close()
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dataplane{proxy: p, icpt: icpt, src: src, log: p.cfg.Logger, retry: cfg.RetryInterval, node: cfg.Node, cancel: cancel, done: make(chan struct{})}
	go d.run(ctx)
	return d, nil
}

// Proxy is the running proxy (for port-forward).
func (d *Dataplane) Proxy() *Proxy { return d.proxy }

func (d *Dataplane) run(ctx context.Context) {
	defer close(d.done)
	var retry, beat <-chan time.Time
	if d.kernel() {
		t := time.NewTicker(heartbeatInterval(d.src.StaleBudget()))
		defer t.Stop()
		beat = t.C
	}
	for {
		changed := d.src.Changed()
		if d.src.Loaded() {
			if s := d.src.Snapshot(); !d.isApplied(s.Seq) || retry != nil {
				retry = nil
				d.awaitPolicy(ctx, s.Seq)
				if err := d.apply(s); err != nil {
					d.log.Error("dataplane: sync failed; retrying", "seq", s.Seq, "err", err)
					retry = time.After(d.retry)
				}
			}
		}
		select {
		case <-changed:
		case <-retry:
		case <-beat:
			if _, ok := d.Applied(); !ok {
				break
			}
			if err := d.heartbeat(); err != nil {
				d.log.Error("dataplane: kernel forwarding heartbeat failed", "err", err)
			}
		case <-ctx.Done():
			return
		}
	}
}

// awaitPolicy lets the policy engine compile seq before the proxy gets
// its routes (policy.Engine.CatchUp); without an engine there is nothing to
// wait for, and the proxy fails closed.
func (d *Dataplane) awaitPolicy(ctx context.Context, seq uint64) {
	if e := d.proxy.engine(); e != nil {
		e.CatchUp(ctx, seq)
	}
}

func (d *Dataplane) kernel() bool { return d.icpt != nil && d.proxy.cfg.Kernel }

// heartbeatInterval refreshes ten times per stale budget, at most once a
// second, so the kernel's deadline tracks the View's lag closely.
func heartbeatInterval(budget time.Duration) time.Duration {
	return min(max(budget/10, 50*time.Millisecond), time.Second)
}

// heartbeat extends kernel forwarding to the moment the View would turn
// stale if it heard nothing more: what is left of the stale budget. A stale
// View sends none, so forwarding lapses with it (and with runed itself).
func (d *Dataplane) heartbeat() error {
	left := d.aliveFor()
	if left <= 0 {
		return nil
	}
	err := d.icpt.Heartbeat(left)
	if err != nil {
		heartbeatErrors.Inc()
	}
	return err
}

// aliveFor is what is left of the stale budget; 0 or less: none.
func (d *Dataplane) aliveFor() time.Duration { return d.src.StaleBudget() - d.src.Lag() }

func countKernel(rs []Redirect) int {
	n := 0
	for _, r := range rs {
		if r.Endpoints != nil {
			n++
		}
	}
	return n
}

// apply puts s in place: only the services that changed since the last
// snapshot applied when the View can tell (O(change)), else the whole table.
func (d *Dataplane) apply(s *cluster.Snapshot) error {
	patched, beat, err := d.patch(s)
	if !patched {
		err = d.applyAll(s)
	}
	if err == nil && d.kernel() {
		kernelPorts.Set(float64(d.kernelPorts))
		if !beat {
			err = d.heartbeat()
		}
	}
	d.last = nil
	if err == nil {
		d.last = s
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.err = err
	if err == nil {
		d.synced, d.applied = true, s.Seq
		if d.moved != nil {
			close(d.moved)
			d.moved = nil
		}
	}
	return err
}

// applyAll rebuilds the whole table from s.
func (d *Dataplane) applyAll(s *cluster.Snapshot) error {
	t := TableFrom(s)
	rs := d.proxy.Update(t)
	d.kernelPorts = countKernel(rs)
	switch {
	case d.icpt == nil:
		return nil
	case !t.CIDR.IsValid():
		return fmt.Errorf("the cluster network is not bootstrapped yet (no CIDR at seq %d)", s.Seq)
	}
	d.icpt.KeepSources(ScopeOf(s, d.node))
	return d.icpt.Sync(t.CIDR, rs)
}

// patch applies what changed between the last snapshot applied and s, and
// reports false when it cannot (nothing applied yet, a full change, or the
// proxy needing a full update).
//
// It reports whether it patched and whether its transaction also carried
// kernel forwarding's heartbeat: one netlink round trip per change instead
// of two, and one transaction fewer to meet the kernel's rare slow commit.
func (d *Dataplane) patch(s *cluster.Snapshot) (patched, beat bool, err error) {
	if d.last == nil {
		return false, false, nil
	}
	c := s.ChangesSince(d.last)
	if c.Full || ScopeOf(s, d.node) != ScopeOf(d.last, d.node) {
		return false, false, nil
	}
	changed := make(map[cluster.NamespacedName]ServiceRoutes, len(c.Services))
	prevEgress := map[cluster.NamespacedName][]netip.Addr{}
	for n := range c.Services {
		changed[n] = RoutesOf(s, n)
		if eg := RoutesOf(d.last, n).Egress; eg != nil {
			prevEgress[n] = eg
		}
	}
	rs, kernelDelta, ok := d.proxy.Patch(s.Seq, changed, prevEgress)
	if !ok {
		return false, false, nil
	}
	d.kernelPorts += kernelDelta
	if d.icpt == nil || len(rs) == 0 {
		return true, false, nil
	}
	var alive time.Duration
	if d.kernel() {
		alive = d.aliveFor()
	}
	return true, alive > 0, d.icpt.Patch(rs, alive)
}

// Applied is the seq of the last snapshot fully in place (proxy table and
// interception), and whether there is one yet.
func (d *Dataplane) Applied() (uint64, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.applied, d.synced
}

// WaitApplied blocks until the snapshot of log seq (or a later one) is
// fully in place, or ctx ends: how a writer waits for its own change to
// take effect on this node.
func (d *Dataplane) WaitApplied(ctx context.Context, seq uint64) error {
	for {
		d.mu.Lock()
		if d.moved == nil {
			d.moved = make(chan struct{})
		}
		applied, ok, moved := d.applied, d.synced, d.moved
		d.mu.Unlock()
		if ok && applied >= seq {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the data plane to apply seq %d (at %d): %w", seq, applied, ctx.Err())
		}
	}
}

func (d *Dataplane) isApplied(seq uint64) bool {
	applied, ok := d.Applied()
	return ok && applied == seq
}

// Ready reports whether interception (or the dev listeners) is in place for
// the View's loaded state: the readiness check runegate waits on.
func (d *Dataplane) Ready() (bool, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.err != nil:
		return false, d.err.Error()
	case !d.src.Loaded() || !d.synced:
		return false, "waiting for the first table to be installed"
	}
	return true, ""
}

// Close stops following, removes the interception (the guard stays) and
// closes the listeners; established connections finish on their own.
func (d *Dataplane) Close() error {
	d.cancel()
	<-d.done
	var err error
	if d.icpt != nil {
		err = d.icpt.Close()
	}
	if perr := d.proxy.Close(); err == nil {
		err = perr
	}
	return err
}
