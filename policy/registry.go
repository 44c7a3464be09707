package policy

import "sync"

// Registry hands the node's Engine from the directive that runs it
// (netpolicy) to the subsystems that enforce it (the proxy, the edge
// ingress). Corefile directives start in an order of the Corefile's choosing,
// so consumers follow the registry instead of looking the Engine up once.
type Registry struct {
	mu     sync.Mutex
	engine *Engine
	next   int
	subs   map[int]func(*Engine)
}

// Default is the process-wide registry: one runed enforces one node's policy.
var Default = &Registry{}

// Publish makes e the current Engine (nil: none, every connection allowed)
// and tells every follower before returning.
func (r *Registry) Publish(e *Engine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.publish(e)
}

func (r *Registry) publish(e *Engine) {
	r.engine = e
	for _, fn := range r.subs {
		fn(e)
	}
}

// Withdraw unpublishes e if it is still the current Engine, so a stopping
// Engine does not clear one that a reload has already put in its place.
func (r *Registry) Withdraw(e *Engine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.engine == e {
		r.publish(nil)
	}
}

// Follow calls fn with the current Engine (possibly nil) now and on every
// change until stop is called. fn runs under the registry's lock, in
// publication order: it must be quick (an atomic store).
func (r *Registry) Follow(fn func(*Engine)) (stop func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.subs == nil {
		r.subs = map[int]func(*Engine){}
	}
	id := r.next
	r.next++
	r.subs[id] = fn
	fn(r.engine)
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.subs, id)
	}
}
