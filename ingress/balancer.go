package ingress

import (
	"math/rand/v2"
	"net/http/httputil"
	"sync/atomic"
	"time"
)

// Passive ejection back-off: the first failed dial benches an endpoint for
// ejectBase, each further consecutive failure doubles it up to ejectMax.
const (
	ejectBase = time.Second
	ejectMax  = 30 * time.Second
)

// backend is one endpoint address. Route tables are rebuilt on every View
// change, but backends are kept across rebuilds (see pool) so their in-flight
// counts and ejection state are not reset by unrelated writes.
type backend struct {
	inflight atomic.Int64
	failures atomic.Int32
	// ejectedUntil is unix nanos; a dial failure moves it into the future.
	ejectedUntil atomic.Int64
	proxy        *httputil.ReverseProxy
}

func (b *backend) ejected(now int64) bool { return now < b.ejectedUntil.Load() }

func (b *backend) dialFailed(now time.Time) {
	f := b.failures.Add(1)
	d := ejectBase << min(f-1, 16)
	if d > ejectMax || d <= 0 {
		d = ejectMax
	}
	b.ejectedUntil.Store(now.Add(d).UnixNano())
}

func (b *backend) dialSucceeded() {
	// Load first: the common case writes nothing, so the cache line stays shared.
	if b.failures.Load() != 0 {
		b.failures.Store(0)
	}
}

// pick chooses by power-of-two-choices on in-flight requests among endpoints
// that are not ejected. If all are ejected it still picks one: an ejection is
// only a guess, and refusing would turn a blip on every endpoint into an
// outage until the back-off ends.
func pick(bs []*backend, now int64) *backend {
	switch len(bs) {
	case 0:
		return nil
	case 1:
		return bs[0]
	}
	a, b := bs[rand.IntN(len(bs))], bs[rand.IntN(len(bs))]
	switch ua, ub := !a.ejected(now), !b.ejected(now); {
	case ua && ub:
		if b.inflight.Load() < a.inflight.Load() {
			return b
		}
		return a
	case ua:
		return a
	case ub:
		return b
	}
	// Both draws were ejected: fall back to the first healthy one in a
	// random rotation, so the fallback does not always hit the same endpoint.
	start := rand.IntN(len(bs))
	for i := range bs {
		if c := bs[(start+i)%len(bs)]; !c.ejected(now) {
			return c
		}
	}
	return a
}
