package follow

import (
	"sync"

	"github.com/runenet/runenet/orderedlog"
)

// Ring keeps the most recent batches in memory, so watchers that keep up
// never touch a backend's storage.
type Ring struct {
	mu   sync.RWMutex
	buf  []*orderedlog.Batch // batch with seq s lives at buf[s%len(buf)]
	low  uint64              // lowest seq held; the ring holds [low, high]
	high uint64
}

// NewRing returns an empty ring of n batches whose next batch is tail+1.
func NewRing(n int, tail uint64) *Ring {
	return &Ring{buf: make([]*orderedlog.Batch, n), low: tail + 1, high: tail}
}

// Push appends batches, which must continue the ring's seqs without a gap.
func (r *Ring) Push(batches ...*orderedlog.Batch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := uint64(len(r.buf))
	for _, b := range batches {
		r.buf[b.Seq%n] = b
		r.high = b.Seq
	}
	if r.high-r.low+1 > n {
		r.low = r.high - n + 1
	}
}

// Reset empties the ring; its next batch is tail+1.
func (r *Ring) Reset(tail uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.buf)
	r.low, r.high = tail+1, tail
}

// Get appends batches from..to (to must be pushed already) to buf and
// reports whether the ring still held from.
func (r *Ring) Get(from, to uint64, buf []*orderedlog.Batch) ([]*orderedlog.Batch, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if from < r.low || to > r.high {
		return buf, false
	}
	n := uint64(len(r.buf))
	for s := from; s <= to; s++ {
		buf = append(buf, r.buf[s%n])
	}
	return buf, true
}

// Low is the lowest seq the ring holds (high+1 when empty).
func (r *Ring) Low() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.low
}
