package cluster

import (
	"context"
	"log/slog"
	"time"
)

// NodeWatchOptions configure WatchNodes.
type NodeWatchOptions struct {
	Self string // this node, alive by definition
	// Grace is how long a node's record may go unchanged before its
	// instances are marked unready; never less than three of the node's own
	// heartbeat periods.
	Grace time.Duration
	// IsLeader reports whether this node leads the log: only the leader
	// marks nodes down, so a death is written once, not once per node.
	IsLeader func() bool
	Logger   *slog.Logger
	Now      func() time.Time // default time.Now (monotonic)
}

// nodeWatch is the leader's liveness bookkeeping: when it last saw each
// node's record change. It judges by its own clock, never by the
// heartbeat times the nodes write, so clock skew between nodes cannot kill
// one; a newly elected leader starts everyone's grace afresh.
type nodeWatch struct {
	c       *Controller
	opts    NodeWatchOptions
	leading bool
	seen    map[string]sighting
}

type sighting struct {
	rev uint64
	at  time.Time
}

// WatchNodes runs until ctx ends: while this node leads, a peer whose
// record has not changed (no heartbeat) for the grace period has its ready
// instances marked unready cluster-wide, so every node's endpoints drop
// them; the peer takes them back at its next heartbeat.
func (c *Controller) WatchNodes(ctx context.Context, opts NodeWatchOptions) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	w := &nodeWatch{c: c, opts: opts}
	tick := time.NewTicker(max(opts.Grace/10, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		for _, d := range w.check(c.view.Snapshot()) {
			marked, instances, err := c.MarkNodeDown(ctx, d.name, d.rev)
			switch {
			case err != nil && ctx.Err() == nil:
				opts.Logger.Warn("cannot mark a silent node down; retrying", "node", d.name, "err", err)
			case marked:
				nodesMarkedDown.Inc()
				opts.Logger.Warn("node stopped heartbeating: its instances are marked unready until it is back",
					"node", d.name, "silent_for", d.silent.Round(time.Millisecond), "instances", instances)
			}
		}
	}
}

// dead is a node to mark down: its record's revision as judged, and how
// long it has been unchanged.
type dead struct {
	name   string
	rev    uint64
	silent time.Duration
}

// check updates the sightings from s and returns the nodes past their
// grace.
func (w *nodeWatch) check(s *Snapshot) []dead {
	if !w.opts.IsLeader() {
		w.leading, w.seen = false, nil
		return nil
	}
	now := w.opts.Now()
	if !w.leading {
		w.leading, w.seen = true, map[string]sighting{}
	}
	var out []dead
	live := map[string]bool{}
	for _, e := range s.Nodes() {
		n := e.Value
		live[n.Name] = true
		last, ok := w.seen[n.Name]
		if !ok || last.rev != e.Rev {
			last = sighting{rev: e.Rev, at: now}
			w.seen[n.Name] = last
		}
		grace := max(w.opts.Grace, 3*n.HeartbeatEvery)
		if n.Name == w.opts.Self || !n.Down.IsZero() || now.Sub(last.at) < grace {
			continue
		}
		out = append(out, dead{name: n.Name, rev: e.Rev, silent: now.Sub(last.at)})
	}
	for name := range w.seen {
		if !live[name] {
			delete(w.seen, name)
		}
	}
	return out
}
