package pmap

import (
	"maps"
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestMatchesGoMap edits one version after another at random (sets,
// overwrites, deletes of present and absent keys, sizes from empty to past
// several levels of splits) and checks every version kept against a Go map
// copied at the same point: an edit must not change any earlier version.
func TestMatchesGoMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	type version struct {
		m    Map[int, int]
		want map[int]int
	}
	var kept []version
	cur, want := Map[int, int]{}, map[int]int{}
	for round := range 300 {
		e := cur.Edit()
		// Bursts that grow the map to ~20,000 keys, then shrink it to empty.
		keys := 20000
		if round >= 200 {
			keys = 300 - round
		}
		for range r.IntN(400) + 1 {
			k := r.IntN(keys*2 + 1)
			switch {
			case round >= 200 || r.IntN(4) == 0:
				e.Delete(k)
				delete(want, k)
			default:
				v := r.Int()
				e.Set(k, v)
				want[k] = v
			}
			wv, wok := want[k]
			if v, ok := e.Get(k); ok != wok || v != wv {
				t.Fatalf("round %d: editor's Get(%d) = %d, %v; want %d, %v", round, k, v, ok, wv, wok)
			}
		}
		if round >= 200 {
			for k := range want {
				e.Delete(k)
				delete(want, k)
			}
		}
		cur = e.Done()
		if round%10 == 0 || round >= 299 {
			kept = append(kept, version{cur, maps.Clone(want)})
		}
	}
	if cur.Len() != 0 {
		t.Fatalf("emptied map has Len %d", cur.Len())
	}
	for i, v := range kept {
		check(t, i, v.m, v.want)
	}
}

func check(t *testing.T, i int, m Map[int, int], want map[int]int) {
	t.Helper()
	if m.Len() != len(want) {
		t.Fatalf("version %d: Len %d, want %d", i, m.Len(), len(want))
	}
	got := map[int]int{}
	m.Range(func(k, v int) bool {
		if _, dup := got[k]; dup {
			t.Fatalf("version %d: Range gave %d twice", i, k)
		}
		got[k] = v
		return true
	})
	if !maps.Equal(got, want) {
		t.Fatalf("version %d: Range gave %d entries differing from the %d expected", i, len(got), len(want))
	}
	for k, v := range want {
		if g, ok := m.Get(k); !ok || g != v {
			t.Fatalf("version %d: Get(%d) = %d, %v; want %d", i, k, g, ok, v)
		}
	}
	if _, ok := m.Get(-1); ok {
		t.Fatalf("version %d: Get of a key never set found it", i)
	}
}

// TestRangeStops: Range ends when f returns false.
func TestRangeStops(t *testing.T) {
	e := NewEditor[int, int]()
	for i := range 1000 {
		e.Set(i, i)
	}
	calls := 0
	e.Done().Range(func(int, int) bool { calls++; return calls < 10 })
	if calls != 10 {
		t.Fatalf("Range called f %d times after it returned false at 10", calls)
	}
}

// TestEditCopiesOnlyThePath: one Set in a 300,000-entry map allocates
// the path to its leaf, about a kilobyte, not a share of the map (a
// 256th of it was some 30 KB).
func TestEditCopiesOnlyThePath(t *testing.T) {
	e := NewEditor[int, int]()
	for i := range 300000 {
		e.Set(i, i)
	}
	m := e.Done()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const edits = 1000
	for i := range edits {
		e := m.Edit()
		e.Set(i, -i)
		m = e.Done()
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / edits; per > 4096 {
		t.Fatalf("one Set in a 300,000-entry map allocated %d bytes; want the path to one leaf (< 4 KB)", per)
	}
	if v, _ := m.Get(7); v != -7 || m.Len() != 300000 {
		t.Fatalf("after the edits: Get(7) = %d, Len %d; want -7, 300000", v, m.Len())
	}
}
