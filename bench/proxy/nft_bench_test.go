// Package proxybench holds the data plane benchmarks (see run.sh and
// docs/benchmarks.md, "Data plane"). The nftables ones program a network
// namespace they create, never the host's ruleset.
package proxybench

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/orderedlog/badger"
	"github.com/runenet/runenet/policy"
	"github.com/runenet/runenet/proxy"
	"github.com/runenet/runenet/proxy/netnstest"
)

const services = 10000

var cidr = netip.MustParsePrefix("10.96.0.0/16")

func vip(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)}), 80)
}

// table is services services with 3 endpoints each.
func table() *proxy.Table {
	t := &proxy.Table{CIDR: cidr}
	for i := range services {
		sp := proxy.ServicePort{
			Service:  cluster.NamespacedName{Namespace: "bench", Name: fmt.Sprint("svc", i)},
			Protocol: cluster.TCP,
			VIP:      vip(i),
		}
		for e := range 3 {
			sp.Endpoints = append(sp.Endpoints, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(200 + e), byte(i >> 8), byte(i)}), 8080))
		}
		t.Ports = append(t.Ports, sp)
	}
	return t
}

// redirectsFor is what the proxy asks the interception to install for
// table(): in proxy mode one map element per service port; in kernel mode
// also a forwarding chain with a DNAT rule per endpoint.
func redirectsFor(b *testing.B, kernel bool) []proxy.Redirect {
	p, err := proxy.New(proxy.Config{Kernel: kernel, InterceptAddr: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	return p.Update(table())
}

var modes = []struct {
	name   string
	kernel bool
}{{"proxy", false}, {"kernel", true}}

// BenchmarkNFTInstall: programming 10,000 services × 3 endpoints from
// scratch (what a start does), in one transaction.
func BenchmarkNFTInstall(b *testing.B) {
	netnstest.RequireRoot(b)
	ns := netnstest.New(b, "dp-bench")
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			rs := redirectsFor(b, m.kernel)
			for b.Loop() {
				n, err := proxy.NewNFT(proxy.NFTConfig{NetNS: ns.FD})
				if err != nil {
					b.Fatal(err)
				}
				if err := n.Sync(cidr, rs); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				n.Close()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkNFTOneChange: with 10,000 services installed, one service
// appears or disappears; in kernel mode also one endpoint of one service
// moves (its endpoint elements are refilled), and one service loses an
// endpoint (it moves to another endpoint count's set), as an instance
// turning unready does. Each change is made with Sync (the whole list,
// diffed against what is installed) and with Patch (the changed redirect
// only, what the data plane sends).
func BenchmarkNFTOneChange(b *testing.B) {
	netnstest.RequireRoot(b)
	ns := netnstest.New(b, "dp-bench")
	for _, m := range modes {
		full := redirectsFor(b, m.kernel)
		gone := full[len(full)-1]
		gone.Port, gone.Endpoints = 0, nil
		changes := map[string][]proxy.Redirect{"service": full[:len(full)-1]}
		if m.kernel {
			moved := slices.Clone(full)
			moved[0].Endpoints = slices.Clone(moved[0].Endpoints)
			moved[0].Endpoints[0] = netip.AddrPortFrom(moved[0].Endpoints[0].Addr(), 9090)
			changes["endpoint"] = moved
			fewer := slices.Clone(full)
			fewer[0].Endpoints = fewer[0].Endpoints[1:]
			changes["unready"] = fewer
		}
		for what, other := range changes {
			// The redirect that differs, as Patch takes it.
			there, back := []proxy.Redirect{gone}, []proxy.Redirect{full[len(full)-1]}
			if what != "service" {
				there, back = other[:1], full[:1]
			}
			for _, how := range []string{"sync", "patch"} {
				b.Run(m.name+"/"+what+"/"+how, func(b *testing.B) {
					n, err := proxy.NewNFT(proxy.NFTConfig{NetNS: ns.FD})
					if err != nil {
						b.Fatal(err)
					}
					defer n.Close()
					if err := n.Sync(cidr, full); err != nil {
						b.Fatal(err)
					}
					i := 0
					for b.Loop() {
						rs, patch := other, there
						if i%2 == 1 {
							rs, patch = full, back
						}
						i++
						if how == "patch" {
							err = n.Patch(patch, 0)
						} else {
							err = n.Sync(cidr, rs)
						}
						if err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// BenchmarkProxyUpdate: the proxy side of one change with 10,000 services
// × 3 endpoints: swapping in the new table (endpoint changes touch nothing
// in nftables).
func BenchmarkProxyUpdate(b *testing.B) {
	p, err := proxy.New(proxy.Config{InterceptAddr: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	t := table()
	p.Update(t)
	for b.Loop() {
		t.Ports[0].Endpoints[0] = netip.AddrPortFrom(t.Ports[0].Endpoints[0].Addr(), t.Ports[0].Endpoints[0].Port()^1)
		p.Update(t)
	}
}

// BenchmarkApplyOneChange: the whole path of one endpoint change (an
// instance turns ready or unready) with 1,000, 10,000 and 100,000 services
// × 3 endpoints, from the write to "applied": the controller's durable
// write, the View, the policy engine's compile (the data plane waits for
// it, as in runed), the data plane's update and nftables. applied-p50-ms
// and applied-p99-ms time the bar, from the write returning (the
// controller returns once the View holds it) to the data plane reporting it
// applied; with-write-p50-ms and with-write-p99-ms include the durable
// write. TableFrom, what a full rebuild of the data plane's table costs at
// that size, is measured beside it.
func BenchmarkApplyOneChange(b *testing.B) {
	netnstest.RequireRoot(b)
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprint("services=", n), func(b *testing.B) {
			c := populate(b, n)
			b.Run("TableFrom", func(b *testing.B) {
				s := c.View.Snapshot()
				for b.Loop() {
					proxy.TableFrom(s)
				}
			})
			for _, m := range modes {
				b.Run(m.name, func(b *testing.B) {
					dp := startDataplane(b, c, m.kernel)
					// The setup's garbage (the full install: at 100,000
					// services some 400 MB) is collected first, as testing
					// does before every benchmark; otherwise the collection
					// after the install, seconds long on 2 cores, overlaps
					// the changes measured (docs/benchmarks.md has both).
					runtime.GC()
					var applied, withWrite []time.Duration
					i := 0
					for b.Loop() {
						i++
						start := time.Now()
						seq, err := c.Ctl.SetInstanceReady(context.Background(), "svc0-0", i%2 == 0)
						if err != nil {
							b.Fatal(err)
						}
						written := time.Now()
						waitApplied(b, dp, seq)
						applied = append(applied, time.Since(written))
						withWrite = append(withWrite, time.Since(start))
					}
					reportPercentiles(b, "applied-", applied)
					reportPercentiles(b, "with-write-", withWrite)
				})
			}
		})
	}
}

// BenchmarkSustainedChanges: 100,000 services × 3 endpoints, and endpoint
// changes offered at 1,000/s (b.N of them: -benchtime 60000x is a minute),
// instance 0 of one service after another flipping ready/unready. max-lag-ms is
// the longest any change took from its write returning to the data plane
// reporting it applied; changes/s the rate the writes got.
func BenchmarkSustainedChanges(b *testing.B) {
	netnstest.RequireRoot(b)
	const n = 100000
	c := populate(b, n)
	b.Run("rate=1000", func(b *testing.B) { sustain(b, c, n) })
}

func sustain(b *testing.B, c *testkit.Cluster, n int) {
	dp := startDataplane(b, c, false)
	type write struct {
		seq uint64
		at  time.Time
	}
	writes := make(chan write, 100000)
	var maxLag time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		for w := range writes {
			if err := dp.WaitApplied(ctx, w.seq); err != nil {
				b.Error(err) // from this goroutine: Error, not Fatal
				return
			}
			maxLag = max(maxLag, time.Since(w.at))
		}
	}()
	// Change i is offered at start + i ms (late ones at once, so the rate
	// catches up rather than drifting, as a ticker's dropped ticks would);
	// 128 writers keep a slow fsync (tens of ms on a loaded machine) from
	// holding it back: the log commits concurrent writes together.
	jobs := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range 128 {
		wg.Go(func() {
			for i := range jobs {
				id := fmt.Sprintf("svc%d-%d", i%n, i/n%3)
				seq, err := c.Ctl.SetInstanceReady(context.Background(), id, (i/(3*n))%2 == 1)
				if err != nil {
					b.Error(err)
					return
				}
				writes <- write{seq, time.Now()}
			}
		})
	}
	for i := 0; b.Loop(); i++ {
		if d := time.Until(start.Add(time.Duration(i) * time.Millisecond)); d > 0 {
			time.Sleep(d)
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	close(writes)
	<-done
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "changes/s")
	b.ReportMetric(float64(maxLag.Microseconds())/1000, "max-lag-ms")
	b.ReportMetric(0, "ns/op")
}

// populate casts n services with one port each (VIPs from a /14, which
// holds 100,000) and registers 3 ready instances per service.
func populate(b *testing.B, n int) *testkit.Cluster {
	ctx := context.Background()
	c := testkit.NewCluster(b, "10.96.0.0/14", badger.Options{MemTableSize: 256 << 20}, cluster.ViewOptions{})
	const chunk = 5000
	for from := 0; from < n; from += chunk {
		var docs []string
		for i := from; i < min(from+chunk, n); i++ {
			docs = append(docs, fmt.Sprintf("service:\n  name: svc%d\n  ports: [{name: http, port: 80}]\n", i))
		}
		c.Cast(b, docs...)
	}
	var wg sync.WaitGroup
	const workers = 64
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n*3; i += workers {
				in := cluster.Instance{ID: fmt.Sprintf("svc%d-%d", i/3, i%3), Service: fmt.Sprintf("svc%d", i/3), Namespace: "default",
					Node: "n1", IP: netip.AddrFrom4([4]byte{10, byte(100 + i>>16), byte(i >> 8), byte(i)}), Ready: true}
				if _, err := c.Ctl.RegisterInstance(ctx, in); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return c
}

// startDataplane runs a data plane and the policy engine it waits for,
// as runed wires them, in a namespace of its own.
func startDataplane(b *testing.B, c *testkit.Cluster, kernel bool) *proxy.Dataplane {
	ns := netnstest.New(b, "dp-apply")
	e := policy.NewEngine(c.View, "n1", policy.EngineOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	dp, err := proxy.Start(c.View, proxy.DataplaneConfig{
		Proxy: proxy.Config{Kernel: kernel, InterceptAddr: netip.MustParseAddrPort("127.0.0.1:0"), Policy: func() *policy.Engine { return e }},
		NFT:   proxy.NFTConfig{NetNS: ns.FD},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dp.Close() })
	waitApplied(b, dp, c.Log.Tail())
	return dp
}

func reportPercentiles(b *testing.B, prefix string, lat []time.Duration) {
	slices.Sort(lat)
	at := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), prefix+"p50-ms")
	b.ReportMetric(at(0.99), prefix+"p99-ms")
}

// waitApplied is woken by the data plane rather than polling it: a
// sleep of 20µs in an otherwise idle process takes about 1.08 ms here (the
// runtime parks in epoll_wait, whose timeout is in milliseconds), which
// added 0 or 1 ms to each change by how it raced the first check and set
// every p99.
func waitApplied(b *testing.B, dp *proxy.Dataplane, seq uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := dp.WaitApplied(ctx, seq); err != nil {
		b.Fatal(err)
	}
}
