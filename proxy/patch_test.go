package proxy

import (
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/internal/testseed"
	"github.com/runenet/runenet/orderedlog/badger"
)

// recorder is an interceptor that keeps what Sync and Patch leave
// installed, as nftables would.
type recorder struct {
	installed map[frontKey]Redirect
	syncs     int
}

func (r *recorder) Sync(_ netip.Prefix, rs []Redirect) error {
	r.syncs++
	r.installed = map[frontKey]Redirect{}
	r.Patch(rs, 0)
	return nil
}

func (r *recorder) Patch(rs []Redirect, _ time.Duration) error {
	for _, rd := range rs {
		k := frontKey{rd.Protocol, rd.VIP}
		if rd.Port == 0 && rd.Endpoints == nil {
			delete(r.installed, k)
		} else {
			r.installed[k] = rd
		}
	}
	return nil
}

func (r *recorder) Heartbeat(time.Duration) error { return nil }
func (r *recorder) KeepSources(SourceScope)       {}
func (r *recorder) Close() error                  { return nil }

// TestPatchMatchesRebuild: on random sequences of service, policy and
// instance changes, a data plane that applies only what changed (skipping
// snapshots at random, so changes coalesce, and now and then resyncing from
// a full listing) holds exactly the routes, egress sources, interception and
// endpoint bookkeeping of a proxy built from scratch from the same snapshot.
func TestPatchMatchesRebuild(t *testing.T) {
	for _, kernel := range []bool{false, true} {
		t.Run(fmt.Sprintf("kernel=%v", kernel), func(t *testing.T) {
			rng := testseed.Rand(t)
			c := testkit.NewCluster(t, "10.96.0.0/16", badger.Options{}, cluster.ViewOptions{})
			cfg := Config{Kernel: kernel, InterceptAddr: netip.MustParseAddrPort("127.0.0.1:0")}
			p, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			rec := &recorder{}
			d := &Dataplane{proxy: p, icpt: rec, src: c.View, log: slog.Default()}
			patched := 0
			c.RandomSnapshots(t, rng, 400, func(step int, s *cluster.Snapshot) {
				syncs := rec.syncs
				if err := d.apply(s); err != nil {
					t.Fatalf("step %d: apply: %v", step, err)
				}
				if rec.syncs == syncs {
					patched++
				}
				compareWithRebuild(t, step, cfg, d, rec, s)
			})
			if patched < 50 {
				t.Errorf("only %d of the applies were incremental: the test does not exercise Patch", patched)
			}
		})
	}
}

// compareWithRebuild builds a fresh proxy from s and compares it with d's.
func compareWithRebuild(t *testing.T, step int, cfg Config, d *Dataplane, rec *recorder, s *cluster.Snapshot) {
	t.Helper()
	fresh, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	want := map[frontKey]Redirect{}
	for _, rd := range fresh.Update(TableFrom(s)) {
		want[frontKey{rd.Protocol, rd.VIP}] = rd
	}
	got, exp := d.proxy.routes.Load(), fresh.routes.Load()
	fail := func(what string, a, b any) {
		t.Fatalf("step %d (seq %d): %s differ:\nincremental %v\nfrom scratch %v", step, s.Seq, what, a, b)
	}
	if got.seq != exp.seq {
		fail("seqs", got.seq, exp.seq)
	}
	if a, b := routeSet(got.byFront), routeSet(exp.byFront); !maps.Equal(a, b) {
		fail("fronts", a, b)
	}
	if a, b := routeSet(got.byPort), routeSet(exp.byPort); !maps.Equal(a, b) {
		fail("port-forward routes", a, b)
	}
	if a, b := svcRoutes(got), svcRoutes(exp); !maps.Equal(a, b) {
		fail("routes per service", a, b)
	}
	if a, b := collect(got.egress), collect(exp.egress); !maps.Equal(a, b) {
		fail("egress-policed sources", a, b)
	}
	// Ports differ between two proxies (each binds its own sockets); what
	// interception does with a VIP does not.
	if a, b := redirectShapes(rec.installed), redirectShapes(want); !maps.Equal(a, b) {
		fail("interception", a, b)
	}
	if kernel := countKernel(slices.Collect(maps.Values(want))); d.kernelPorts != kernel {
		fail("kernel-forwarded port counts", d.kernelPorts, kernel)
	}
	refs := func(p *Proxy) map[netip.AddrPort]int {
		out := map[netip.AddrPort]int{}
		for a, reg := range p.endpoints {
			out[a] = reg.refs
		}
		return out
	}
	if a, b := refs(d.proxy), refs(fresh); !maps.Equal(a, b) {
		fail("registered endpoints", a, b)
	}
	if !maps.Equal(d.proxy.routesOf, fresh.routesOf) {
		fail("metric series", d.proxy.routesOf, fresh.routesOf)
	}
	sockets := func(p *Proxy) map[frontKey]bool {
		out := map[frontKey]bool{}
		for k := range p.fronts {
			out[k] = true
		}
		return out
	}
	if a, b := sockets(d.proxy), sockets(fresh); !maps.Equal(a, b) {
		fail("UDP sockets", a, b)
	}
}

func collect[K comparable, V any](m interface{ Range(func(K, V) bool) }) map[K]V {
	out := map[K]V{}
	m.Range(func(k K, v V) bool { out[k] = v; return true })
	return out
}

// routeSet renders each route by what it routes.
func routeSet[K comparable](m interface {
	Range(func(K, *route) bool)
}) map[K]string {
	out := map[K]string{}
	m.Range(func(k K, r *route) bool { out[k] = fmt.Sprint(r.sp); return true })
	return out
}

func svcRoutes(rt *routes) map[cluster.NamespacedName]string {
	out := map[cluster.NamespacedName]string{}
	rt.bySvc.Range(func(n cluster.NamespacedName, rs []*route) bool {
		var sps []string
		for _, r := range rs {
			sps = append(sps, fmt.Sprint(r.sp))
		}
		slices.Sort(sps)
		out[n] = strings.Join(sps, " ")
		return true
	})
	return out
}

func redirectShapes(m map[frontKey]Redirect) map[frontKey]string {
	out := map[frontKey]string{}
	for k, rd := range m {
		out[k] = fmt.Sprintf("port set %v, endpoints %v", rd.Port != 0, rd.Endpoints)
	}
	return out
}
