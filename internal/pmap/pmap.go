// Package pmap is an immutable map split into shards, so that a new version
// after a small edit copies only the shards it touches. The View publishes a
// snapshot per batch and the data plane a routing table per change; copying
// a 100,000-entry map each time would make every update O(cluster size).
// Readers of a Map never lock: a Map is never modified once built.
package pmap

import "hash/maphash"

// Map is one immutable version. The zero Map is empty.
type Map[K comparable, V any] struct {
	shards *[shards]map[K]V
	n      int
}

const shards = 256

var seed = maphash.MakeSeed()

func shardOf[K comparable](k K) int {
	return int(maphash.Comparable(seed, k) % shards)
}

func (m Map[K, V]) Get(k K) (V, bool) {
	if m.shards == nil {
		var zero V
		return zero, false
	}
	v, ok := m.shards[shardOf(k)][k]
	return v, ok
}

func (m Map[K, V]) Len() int { return m.n }

// Range calls f for every entry, in no particular order, until f returns false.
func (m Map[K, V]) Range(f func(K, V) bool) {
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

// Editor builds the next version of a Map; each shard is copied at most
// once per edit, and the original stays untouched.
type Editor[K comparable, V any] struct {
	m      Map[K, V]
	copied [shards]bool
}

// Edit starts the next version of m.
func (m Map[K, V]) Edit() *Editor[K, V] {
	var s [shards]map[K]V
	if m.shards != nil {
		s = *m.shards
	}
	return &Editor[K, V]{m: Map[K, V]{shards: &s, n: m.n}}
}

// NewEditor starts an empty map sized for n entries, so a bulk load does
// not rehash every shard as it grows.
func NewEditor[K comparable, V any](n int) *Editor[K, V] {
	e := &Editor[K, V]{m: Map[K, V]{shards: &[shards]map[K]V{}}}
	for i := range e.m.shards {
		e.m.shards[i] = make(map[K]V, n/shards+n/shards/4)
		e.copied[i] = true
	}
	return e
}

func (e *Editor[K, V]) shard(k K) map[K]V {
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

func (e *Editor[K, V]) Set(k K, v V) {
	s := e.shard(k)
	if _, ok := s[k]; !ok {
		e.m.n++
	}
	s[k] = v
}

func (e *Editor[K, V]) Delete(k K) {
	if e.m.shards[shardOf(k)] == nil {
		return
	}
	if _, ok := e.m.shards[shardOf(k)][k]; !ok {
		return
	}
	delete(e.shard(k), k)
	e.m.n--
}

func (e *Editor[K, V]) Get(k K) (V, bool) { return e.m.Get(k) }

func (e *Editor[K, V]) Len() int { return e.m.n }

// Done returns the new version. The editor must not be used after.
func (e *Editor[K, V]) Done() Map[K, V] { return e.m }
