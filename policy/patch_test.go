package policy

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/internal/testseed"
	"github.com/runenet/runenet/orderedlog/badger"
)

// TestPatchMatchesCompile: on random sequences of service, policy and
// instance changes, an Engine that compiles only what changed (skipping
// snapshots at random, so changes coalesce, and now and then resyncing from
// a full listing) holds exactly the tables a compile from scratch of the
// same snapshot gives.
func TestPatchMatchesCompile(t *testing.T) {
	rng := testseed.Rand(t)
	c := testkit.NewCluster(t, "10.96.0.0/16", badger.Options{}, cluster.ViewOptions{})
	e := NewEngine(c.View, "n1", EngineOptions{})
	patched := 0
	c.RandomSnapshots(t, rng, 400, func(step int, s *cluster.Snapshot) {
		if !s.ChangesSince(e.from).Full {
			patched++
		}
		got, want := e.compile(s, e.Tables()), Compile(s, "n1")
		e.tables.Store(got)
		fail := func(what string, a, b any) {
			t.Fatalf("step %d (seq %d): %s differ:\nincremental %v\nfrom scratch %v", step, s.Seq, what, a, b)
		}
		if got.Seq != want.Seq {
			fail("seqs", got.Seq, want.Seq)
		}
		if a, b := collect(got.ids), collect(want.ids); !maps.Equal(a, b) {
			fail("identities", a, b)
		}
		if a, b := render(got.members), render(want.members); !maps.Equal(a, b) {
			fail("instances per service", a, b)
		}
		if !slices.Equal(got.peers, want.peers) {
			fail("peer node addresses", got.peers, want.peers)
		}
		if got.localCount != want.localCount {
			fail("local instance counts", got.localCount, want.localCount)
		}
		if a, b := collect(got.vips), collect(want.vips); !maps.Equal(a, b) {
			fail("VIPs", a, b)
		}
		if a, b := renderPolicies(got), renderPolicies(want); !maps.Equal(a, b) {
			fail("compiled policies", a, b)
		}
		if a, b := fmt.Sprint(planKernel(got, false)), fmt.Sprint(planKernel(want, false)); a != b {
			fail("kernel plans", a, b)
		}
	})
	if patched < 50 {
		t.Errorf("only %d of the compiles were incremental: the test does not exercise patch", patched)
	}
}

func collect[K comparable, V comparable](m interface{ Range(func(K, V) bool) }) map[K]V {
	out := map[K]V{}
	m.Range(func(k K, v V) bool { out[k] = v; return true })
	return out
}

func render[K comparable, V any](m interface{ Range(func(K, V) bool) }) map[K]string {
	out := map[K]string{}
	m.Range(func(k K, v V) bool { out[k] = fmt.Sprint(v); return true })
	return out
}

// renderPolicies shows each compiled policy by its records' revisions and
// its rules.
func renderPolicies(t *Tables) map[cluster.NamespacedName]string {
	out := map[cluster.NamespacedName]string{}
	t.services.Range(func(n cluster.NamespacedName, sp *servicePolicy) bool {
		out[n] = fmt.Sprintf("%s p%d s%d ingress %v egress %v", sp.label, sp.policyRev, sp.serviceRev, rules(sp.ingress), rules(sp.egress))
		return true
	})
	return out
}

func rules(rs *ruleSet) any {
	if rs == nil {
		return nil
	}
	return rs.rules
}
