// Package readiness is where data-path subsystems (view, proxy, policy,
// ingress) report whether they can carry traffic. runegate answers SERVFAIL
// for .rune names until every registered check passes, so DNS never hands out
// an answer the data path cannot serve yet.
package readiness

import (
	"sort"
	"sync"
)

// Check reports whether a subsystem is ready and, if not, why.
type Check func() (ready bool, reason string)

// Registry holds a node's checks. The node runtime owns one (there is no
// process-wide registry): its directives register their subsystems in it.
type Registry struct {
	mu     sync.RWMutex
	checks map[string]Check
}

// Register adds or replaces the check for name.
func (r *Registry) Register(name string, c Check) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checks == nil {
		r.checks = map[string]Check{}
	}
	r.checks[name] = c
}

// Unregister removes name's check (a subsystem shutting down for good).
func (r *Registry) Unregister(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.checks, name)
}

// State is one subsystem's readiness, as `rune status` shows it.
type State struct {
	Name   string `json:"name"`
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"` // why not, when not
}

// States runs every check and reports each, sorted by name.
func (r *Registry) States() []State {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]State, 0, len(r.checks))
	for name, c := range r.checks {
		ok, why := c()
		st := State{Name: name, Ready: ok}
		if !ok {
			st.Reason = why
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Ready reports whether every check passes; when not, it lists
// "name: reason" for each failing one, sorted. An empty registry is not
// ready: nothing has said the data path exists.
func (r *Registry) Ready() (bool, []string) {
	states := r.States()
	if len(states) == 0 {
		return false, []string{"no data-path subsystem registered"}
	}
	var failing []string
	for _, st := range states {
		if !st.Ready {
			failing = append(failing, st.Name+": "+st.Reason)
		}
	}
	return len(failing) == 0, failing
}
