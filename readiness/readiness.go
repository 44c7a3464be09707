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

// Each runs every check and calls fn with each subsystem's name, whether it
// is ready and, when not, why; in name order.
func (r *Registry) Each(fn func(name string, ready bool, reason string)) {
	r.mu.RLock()
	names := make([]string, 0, len(r.checks))
	for name := range r.checks {
		names = append(names, name)
	}
	checks := make([]Check, len(names))
	sort.Strings(names)
	for i, name := range names {
		checks[i] = r.checks[name]
	}
	r.mu.RUnlock()
	for i, name := range names {
		ok, why := checks[i]()
		if ok {
			why = ""
		}
		fn(name, ok, why)
	}
}

// Ready reports whether every check passes; when not, it lists
// "name: reason" for each failing one, sorted. An empty registry is not
// ready: nothing has said the data path exists.
func (r *Registry) Ready() (bool, []string) {
	var failing []string
	n := 0
	r.Each(func(name string, ok bool, why string) {
		n++
		if !ok {
			failing = append(failing, name+": "+why)
		}
	})
	if n == 0 {
		return false, []string{"no data-path subsystem registered"}
	}
	return len(failing) == 0, failing
}
