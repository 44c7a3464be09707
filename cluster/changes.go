package cluster

import "sync"

// Changes is what may differ between two snapshots of one View, so that a
// consumer can update only what changed instead of rebuilding from the
// whole snapshot.
type Changes struct {
	// Full: anything may differ, and the consumer must rebuild (or compare)
	// everything: the View re-listed (first load, compaction, reconnect), the
	// cluster network changed, or the older snapshot is from before the
	// history the View keeps.
	Full bool
	// Services are those whose record, VIP allocation, endpoints, policy or
	// instances may differ, including created and deleted ones; nil when
	// Full. Every snapshot published in between is covered: deltas of
	// snapshots a consumer skipped are unioned, never lost.
	Services map[NamespacedName]struct{}
	// Nodes are the node records that may differ (created, heartbeat,
	// subnet, removed), by name; nil when Full.
	Nodes map[string]struct{}
}

// ChangesSince reports what may differ between prev, an older snapshot of
// the same View, and s. A prev of nil, of another View or built outside one
// (LoadFrom) is a full change.
func (s *Snapshot) ChangesSince(prev *Snapshot) Changes {
	switch {
	case prev == s:
		return Changes{Services: map[NamespacedName]struct{}{}, Nodes: map[string]struct{}{}}
	case prev == nil || s.hist == nil || prev.hist != s.hist || prev.gen >= s.gen:
		return Changes{Full: true}
	}
	return s.hist.since(prev.gen, s.gen)
}

// allServices stands, in an edit's changed set, for a change to every
// service; no service has an empty namespace.
var allServices = NamespacedName{}

// History bounds: past them the oldest deltas are dropped, and a consumer
// that far behind gets a full change.
const (
	historyDeltas = 4096
	historyNames  = 1 << 20
)

// history is a View's recent deltas, one per published snapshot, so a
// consumer holding any recent snapshot can ask what changed since.
type history struct {
	mu     sync.Mutex
	deltas []delta // consecutive gens, oldest first
	names  int     // services and nodes listed in deltas
	gen    uint64  // the newest gen handed out
}

// delta leads from snapshot gen-1 to snapshot gen.
type delta struct {
	gen      uint64
	full     bool
	services []NamespacedName
	nodes    []string
}

// add records the delta to the next snapshot and returns that snapshot's
// gen. changed nil (or holding allServices) is a full change; nodes are the
// node records it changed.
func (h *history) add(changed map[NamespacedName]struct{}, nodes map[string]struct{}) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gen++
	d := delta{gen: h.gen, full: changed == nil}
	if _, all := changed[allServices]; all {
		d.full = true
	}
	if !d.full {
		d.services = make([]NamespacedName, 0, len(changed))
		for n := range changed {
			d.services = append(d.services, n)
		}
		for n := range nodes {
			d.nodes = append(d.nodes, n)
		}
	}
	h.deltas = append(h.deltas, d)
	h.names += len(d.services) + len(d.nodes)
	// Trimmed to half the bounds once past them, so the copy is amortized
	// over many publishes.
	if len(h.deltas) > historyDeltas || h.names > historyNames {
		drop := 0
		for len(h.deltas)-drop > historyDeltas/2 || (h.names > historyNames/2 && len(h.deltas)-drop > 1) {
			h.names -= len(h.deltas[drop].services) + len(h.deltas[drop].nodes)
			drop++
		}
		h.deltas = append(h.deltas[:0:0], h.deltas[drop:]...)
	}
	return h.gen
}

// since unions the deltas from snapshot gen from to snapshot gen to.
func (h *history) since(from, to uint64) Changes {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.deltas) == 0 || h.deltas[0].gen > from+1 {
		return Changes{Full: true}
	}
	c := Changes{Services: map[NamespacedName]struct{}{}, Nodes: map[string]struct{}{}}
	for _, d := range h.deltas[from+1-h.deltas[0].gen:] {
		if d.gen > to {
			break
		}
		if d.full {
			return Changes{Full: true}
		}
		for _, n := range d.services {
			c.Services[n] = struct{}{}
		}
		for _, n := range d.nodes {
			c.Nodes[n] = struct{}{}
		}
	}
	return c
}
