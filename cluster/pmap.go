package cluster

import "hash/maphash"

// pmap is an immutable map split into shards so that a new version after a
// small batch copies only the shards it touches: the View publishes a fresh
// snapshot per batch, and copying a 100,000-entry map each time would make
// every update O(cluster size).
type pmap[K comparable, V any] struct {
	shards *[pmapShards]map[K]V
	n      int
}

const pmapShards = 256

var pmapSeed = maphash.MakeSeed()

func shardOf[K comparable](k K) int {
	return int(maphash.Comparable(pmapSeed, k) % pmapShards)
}

func (m pmap[K, V]) Get(k K) (V, bool) {
	if m.shards == nil {
		var zero V
		return zero, false
	}
	v, ok := m.shards[shardOf(k)][k]
	return v, ok
}

func (m pmap[K, V]) Len() int { return m.n }

// Range calls f for every entry, in no particular order, until f returns false.
func (m pmap[K, V]) Range(f func(K, V) bool) {
	if m.shards == nil {
		return
	}
	for _, s := range m.shards {
		for k, v := range s {
			if !f(k, v) {
				return
			}
		}
	}
}

// pmapEditor builds the next version of a pmap; each shard is copied at most
// once per edit, and the original stays untouched.
type pmapEditor[K comparable, V any] struct {
	m      pmap[K, V]
	copied [pmapShards]bool
}

func (m pmap[K, V]) edit() *pmapEditor[K, V] {
	var shards [pmapShards]map[K]V
	if m.shards != nil {
		shards = *m.shards
	}
	return &pmapEditor[K, V]{m: pmap[K, V]{shards: &shards, n: m.n}}
}

// newPmapEditor starts an empty map sized for n entries, so a bulk load does
// not rehash every shard as it grows.
func newPmapEditor[K comparable, V any](n int) *pmapEditor[K, V] {
	e := &pmapEditor[K, V]{m: pmap[K, V]{shards: &[pmapShards]map[K]V{}}}
	for i := range e.m.shards {
		e.m.shards[i] = make(map[K]V, n/pmapShards+n/pmapShards/4)
		e.copied[i] = true
	}
	return e
}

func (e *pmapEditor[K, V]) shard(k K) map[K]V {
	i := shardOf(k)
	if !e.copied[i] {
		old := e.m.shards[i]
		s := make(map[K]V, len(old)+1)
		for k, v := range old {
			s[k] = v
		}
		e.m.shards[i] = s
		e.copied[i] = true
	}
	return e.m.shards[i]
}

func (e *pmapEditor[K, V]) Set(k K, v V) {
	s := e.shard(k)
	if _, ok := s[k]; !ok {
		e.m.n++
	}
	s[k] = v
}

func (e *pmapEditor[K, V]) Delete(k K) {
	if e.m.shards[shardOf(k)] == nil {
		return
	}
	if _, ok := e.m.shards[shardOf(k)][k]; !ok {
		return
	}
	delete(e.shard(k), k)
	e.m.n--
}

func (e *pmapEditor[K, V]) Get(k K) (V, bool) { return e.m.Get(k) }

func (e *pmapEditor[K, V]) done() pmap[K, V] { return e.m }
