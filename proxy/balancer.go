package proxy

import (
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"time"
)

// endpoint is one backend address. It is shared by every table that lists it
// (and by every service port that points at it), so its active count and
// ejection state survive table swaps; a connection keeps its *endpoint until
// it ends, which is what lets removed endpoints drain.
type endpoint struct {
	addr netip.AddrPort
	// dial is addr as the dialer takes it, formatted once.
	dial     string
	active   atomic.Int64
	failures atomic.Int32
	// ejectedUntil (unix nanos) keeps the endpoint out of rotation after a
	// failed connect; each consecutive failure doubles the back-off.
	ejectedUntil atomic.Int64
}

func (e *endpoint) ejected(now int64) bool { return now < e.ejectedUntil.Load() }

// failed records a failed connect and ejects the endpoint. It reports whether
// this was a new ejection (not one already in force), for the metric.
func (e *endpoint) failed(now int64, base, max time.Duration) bool {
	f := e.failures.Add(1)
	d := base << min(f-1, 20)
	if d > max || d <= 0 {
		d = max
	}
	wasEjected := e.ejected(now)
	e.ejectedUntil.Store(now + int64(d))
	return !wasEjected
}

// succeeded ends the back-off sequence: the next failure starts from base.
func (e *endpoint) succeeded() {
	if e.failures.Load() != 0 {
		e.failures.Store(0)
	}
}

// pick chooses an endpoint by power-of-two-choices on active connections,
// skipping ejected endpoints and the ones in tried (already failed for this
// connection). When every untried endpoint is ejected it still picks one of
// them: a back-off is a guess, and refusing outright would turn a brief blip
// on every endpoint into an outage.
func pick(eps []*endpoint, tried []*endpoint, now int64) *endpoint {
	n := len(eps)
	if n == 0 {
		return nil
	}
	usable := func(e *endpoint) bool { return !e.ejected(now) && !contains(tried, e) }
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
	var cands []*endpoint
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
		return nil
	case 1:
		return cands[0]
	}
	i := rand.IntN(len(cands))
	j := (i + 1 + rand.IntN(len(cands)-1)) % len(cands)
	return lessLoaded(cands[i], cands[j])
}

func lessLoaded(a, b *endpoint) *endpoint {
	if b.active.Load() < a.active.Load() {
		return b
	}
	return a
}

func contains(s []*endpoint, e *endpoint) bool {
	for _, x := range s {
		if x == e {
			return true
		}
	}
	return false
}
