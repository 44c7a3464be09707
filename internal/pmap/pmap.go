// Package pmap is an immutable hash map whose next version after a small
// edit shares all but a few small nodes with the one before. The View
// publishes a snapshot per batch and the data plane a routing table per
// change; copying a 100,000-entry map each time, or even a 256th of it,
// would make every update O(cluster size) in time and in garbage (the
// 256-shard layout this replaced copied a ~1,200-entry Go map per key
// touched in a 300,000-entry map: about 0.9 MB of garbage per endpoint
// change at 100,000 services, the collections of which overlapped later
// changes). Readers of a Map never lock: a Map is never modified once built.
//
// The map is a hash trie: a branch has 32 children, picked by 5 bits of the
// key's hash per level; a leaf holds up to leafMax entries and splits when
// it outgrows them. An edit copies the path from the root to the key's leaf
// (a 300,000-entry map is about four levels deep: some 3 KB), and nodes an
// edit has copied already are changed in place for the rest of it.
package pmap

import (
	"hash/maphash"
	"sync/atomic"
)

const (
	bits    = 5
	fan     = 1 << bits
	mask    = fan - 1
	leafMax = 16
)

var seed = maphash.MakeSeed()

func hashOf[K comparable](k K) uint64 { return maphash.Comparable(seed, k) }

// Map is one immutable version. The zero Map is empty.
type Map[K comparable, V any] struct {
	root *node[K, V]
	n    int
}

// node is a branch (kids set) or a leaf (entries, unordered).
type node[K comparable, V any] struct {
	// owner is the editor that made this node and may still change it in
	// place; a node of a Map that is Done is never changed again.
	owner uint64
	kids  *[fan]*node[K, V]
	leaf  []entry[K, V]
}

type entry[K comparable, V any] struct {
	h uint64
	k K
	v V
}

func (m Map[K, V]) Get(k K) (V, bool) {
	h := hashOf(k)
	n := m.root
	for shift := 0; n != nil; shift += bits {
		if n.kids != nil {
			n = n.kids[(h>>shift)&mask]
			continue
		}
		for i := range n.leaf {
			if e := &n.leaf[i]; e.h == h && e.k == k {
				return e.v, true
			}
		}
		break
	}
	var zero V
	return zero, false
}

func (m Map[K, V]) Len() int { return m.n }

// Range calls f for every entry, in no particular order, until f returns false.
func (m Map[K, V]) Range(f func(K, V) bool) {
	if m.root != nil {
		m.root.rangeAll(f)
	}
}

func (n *node[K, V]) rangeAll(f func(K, V) bool) bool {
	if n.kids != nil {
		for _, c := range n.kids {
			if c != nil && !c.rangeAll(f) {
				return false
			}
		}
		return true
	}
	for i := range n.leaf {
		if !f(n.leaf[i].k, n.leaf[i].v) {
			return false
		}
	}
	return true
}

// Editor builds the next version of a Map; each node on the path to a key
// it changes is copied at most once per edit, and the original stays
// untouched.
type Editor[K comparable, V any] struct {
	m  Map[K, V]
	id uint64
}

// editors hands out editor ids; 0 is no editor's.
var editors atomic.Uint64

// Edit starts the next version of m.
func (m Map[K, V]) Edit() *Editor[K, V] {
	return &Editor[K, V]{m: m, id: editors.Add(1)}
}

// NewEditor starts an empty map.
func NewEditor[K comparable, V any]() *Editor[K, V] {
	return Map[K, V]{}.Edit()
}

// own returns n if this edit made it, else a copy this edit may change
// (for nil, a new empty leaf).
func (e *Editor[K, V]) own(n *node[K, V]) *node[K, V] {
	if n != nil && n.owner == e.id {
		return n
	}
	c := &node[K, V]{owner: e.id}
	switch {
	case n == nil:
	case n.kids != nil:
		kids := *n.kids
		c.kids = &kids
	default:
		c.leaf = make([]entry[K, V], len(n.leaf), len(n.leaf)+1)
		copy(c.leaf, n.leaf)
	}
	return c
}

// leafFor makes this edit's own the path from the root to the leaf where a
// key of hash h is or would be, and returns that leaf, the pointer to it
// in its parent (or the root) and the level of hash bits it sits at.
func (e *Editor[K, V]) leafFor(h uint64) (n *node[K, V], at **node[K, V], shift int) {
	at = &e.m.root
	for ; ; shift += bits {
		n = e.own(*at)
		*at = n
		if n.kids == nil {
			return n, at, shift
		}
		at = &n.kids[(h>>shift)&mask]
	}
}

func (e *Editor[K, V]) Set(k K, v V) {
	h := hashOf(k)
	n, _, shift := e.leafFor(h)
	for i := range n.leaf {
		if x := &n.leaf[i]; x.h == h && x.k == k {
			x.v = v
			return
		}
	}
	n.leaf = append(n.leaf, entry[K, V]{h, k, v})
	e.m.n++
	// Past the hash's last bits the keys of a leaf all hash alike, and it
	// just grows.
	if len(n.leaf) > leafMax && shift+bits < 64 {
		e.split(n, shift)
	}
}

// split turns leaf n, at the level that branches on hash bits shift.., into
// a branch whose leaves are this edit's.
func (e *Editor[K, V]) split(n *node[K, V], shift int) {
	n.kids = new([fan]*node[K, V])
	for _, x := range n.leaf {
		i := (x.h >> shift) & mask
		c := n.kids[i]
		if c == nil {
			c = &node[K, V]{owner: e.id}
			n.kids[i] = c
		}
		c.leaf = append(c.leaf, x)
	}
	n.leaf = nil
}

func (e *Editor[K, V]) Delete(k K) {
	if _, ok := e.m.Get(k); !ok {
		return // nothing to copy
	}
	h := hashOf(k)
	n, at, _ := e.leafFor(h)
	for i := range n.leaf {
		if x := &n.leaf[i]; x.h == h && x.k == k {
			last := len(n.leaf) - 1
			n.leaf[i] = n.leaf[last]
			n.leaf[last] = entry[K, V]{} // no stale references for the collector
			n.leaf = n.leaf[:last]
			break
		}
	}
	if len(n.leaf) == 0 {
		*at = nil
	}
	e.m.n--
}

func (e *Editor[K, V]) Get(k K) (V, bool) { return e.m.Get(k) }

func (e *Editor[K, V]) Len() int { return e.m.n }

// Done returns the new version. The editor must not be used after.
func (e *Editor[K, V]) Done() Map[K, V] { return e.m }
