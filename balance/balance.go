// Package balance is the load balancing and passive health that the data
// plane proxy and the edge ingress share: power-of-two-choices on current
// load, and ejection with an exponential back-off after failed connects.
package balance

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Health is an endpoint's passive health: consecutive failed connects and
// the ejection they earned. Embed it in the endpoint type.
type Health struct {
	failures atomic.Int32
	// ejectedUntil (unix nanos) keeps the endpoint out of rotation after a
	// failed connect; each consecutive failure doubles the back-off.
	ejectedUntil atomic.Int64
}

// Ejected reports whether the endpoint is out of rotation at now (unix nanos).
func (h *Health) Ejected(now int64) bool { return now < h.ejectedUntil.Load() }

// Failed records a failed connect and ejects the endpoint for base, doubled
// per consecutive failure, capped at max. It reports whether this was a new
// ejection (not one already in force), for metrics.
func (h *Health) Failed(now int64, base, max time.Duration) bool {
	f := h.failures.Add(1)
	d := base << min(f-1, 20)
	if d > max || d <= 0 {
		d = max
	}
	wasEjected := h.Ejected(now)
	h.ejectedUntil.Store(now + int64(d))
	return !wasEjected
}

// Succeeded ends the back-off sequence: the next failure starts from base.
func (h *Health) Succeeded() {
	// Load first: the common case writes nothing, so the cache line stays shared.
	if h.failures.Load() != 0 {
		h.failures.Store(0)
	}
}

// Endpoint is what Pick chooses among: an endpoint with Health embedded and
// its current load (active connections, requests in flight).
type Endpoint interface {
	comparable
	Ejected(now int64) bool
	Load() int64
}

// Pick chooses an endpoint by power-of-two-choices on load, skipping ejected
// endpoints and the ones in tried (already failed for this connection). When
// every untried endpoint is ejected it still picks one of them: a back-off is
// a guess, and refusing outright would turn a brief blip on every endpoint
// into an outage. It returns the zero E when every endpoint was tried.
func Pick[E Endpoint](eps, tried []E, now int64) E {
	var none E
	n := len(eps)
	if n == 0 {
		return none
	}
	usable := func(e E) bool { return !e.Ejected(now) && !contains(tried, e) }
	// Fast path: two random draws, as p2c intends; no allocation.
	a := eps[rand.IntN(n)]
	b := a
	if n > 1 {
		b = eps[rand.IntN(n)]
	}
	switch ua, ub := usable(a), usable(b); {
	case ua && ub:
		return lessLoaded(a, b)
	case ua:
		return a
	case ub:
		return b
	}
	// Slow path: the draws hit ejected or tried endpoints.
	var cands []E
	for _, e := range eps {
		if usable(e) {
			cands = append(cands, e)
		}
	}
	if len(cands) == 0 {
		for _, e := range eps {
			if !contains(tried, e) {
				cands = append(cands, e)
			}
		}
	}
	switch len(cands) {
	case 0:
		return none
	case 1:
		return cands[0]
	}
	i := rand.IntN(len(cands))
	j := (i + 1 + rand.IntN(len(cands)-1)) % len(cands)
	return lessLoaded(cands[i], cands[j])
}

func lessLoaded[E Endpoint](a, b E) E {
	if b.Load() < a.Load() {
		return b
	}
	return a
}

func contains[E comparable](s []E, e E) bool {
	for _, x := range s {
		if x == e {
			return true
		}
	}
	return false
}
