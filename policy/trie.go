package policy

import "net/netip"

// trie is a binary prefix trie answering "the lowest rule index among the
// prefixes containing this address" in at most 32 (IPv4) or 128 (IPv6) steps,
// whatever the number of prefixes. Nodes live in one slice so a lookup walks
// contiguous memory instead of chasing pointers.
type trie struct {
	v4, v6 int32 // roots; -1 until a prefix of that family is inserted
	nodes  []trieNode
}

type trieNode struct {
	child [2]int32 // 0 = none (the root is never anyone's child)
	rule  int32    // lowest rule ending exactly here, or noRule
}

const noRule = int32(1<<31 - 1)

func newTrie() trie { return trie{v4: -1, v6: -1} }

func (t *trie) newNode() int32 {
	t.nodes = append(t.nodes, trieNode{rule: noRule})
	return int32(len(t.nodes) - 1)
}

func (t *trie) insert(p netip.Prefix, rule int32) {
	root := &t.v6
	if p.Addr().Is4() {
		root = &t.v4
	}
	if *root < 0 {
		*root = t.newNode()
	}
	n := *root
	a := p.Addr().AsSlice()
	for i := 0; i < p.Bits(); i++ {
		b := a[i/8] >> (7 - i%8) & 1
		next := t.nodes[n].child[b]
		if next == 0 {
			next = t.newNode()
			t.nodes[n].child[b] = next
		}
		n = next
	}
	t.nodes[n].rule = min(t.nodes[n].rule, rule)
}

// lookup returns the lowest rule of any prefix containing a, or noRule.
func (t *trie) lookup(a netip.Addr) int32 {
	n := t.v6
	if a.Is4() {
		n = t.v4
	}
	if n < 0 {
		return noRule
	}
	best := noRule
	b16 := a.As16()
	bits := 128
	off := 0
	if a.Is4() {
		bits, off = 32, 12
	}
	for i := 0; ; i++ {
		best = min(best, t.nodes[n].rule)
		if i == bits {
			return best
		}
		next := t.nodes[n].child[b16[off+i/8]>>(7-i%8)&1]
		if next == 0 {
			return best
		}
		n = next
	}
}
