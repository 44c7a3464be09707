// Package proxybench holds the data plane benchmarks (see run.sh and
// docs/benchmarks.md, "Data plane"). The nftables ones program a network
// namespace they create, never the host's ruleset.
package proxybench

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/orderedlog/badger"
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
// changes (its forwarding chain is refilled).
func BenchmarkNFTOneChange(b *testing.B) {
	netnstest.RequireRoot(b)
	ns := netnstest.New(b, "dp-bench")
	for _, m := range modes {
		full := redirectsFor(b, m.kernel)
		moved := slices.Clone(full)
		if m.kernel {
			moved[0].Endpoints = slices.Clone(moved[0].Endpoints)
			moved[0].Endpoints[0] = netip.AddrPortFrom(moved[0].Endpoints[0].Addr(), 9090)
		}
		changes := map[string][]proxy.Redirect{"service": full[:len(full)-1]}
		if m.kernel {
			changes["endpoint"] = moved
		}
		for what, other := range changes {
			b.Run(m.name+"/"+what, func(b *testing.B) {
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
					rs := other
					if i%2 == 1 {
						rs = full
					}
					i++
					if err := n.Sync(cidr, rs); err != nil {
						b.Fatal(err)
					}
				}
			})
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

// BenchmarkApplyOneChange: the whole path of one endpoint change with
// 10,000 services × 3 endpoints, from the write to "applied": the
// controller's durable write, the View, the data plane's table (TableFrom,
// the proxy's swap) and nftables. TableFrom alone is measured too.
func BenchmarkApplyOneChange(b *testing.B) {
	netnstest.RequireRoot(b)
	ctx := context.Background()
	c := testkit.NewCluster(b, "10.96.0.0/16", badger.Options{}, cluster.ViewOptions{})
	docs := make([]string, services)
	for i := range docs {
		docs[i] = fmt.Sprintf("service:\n  name: svc%d\n  ports: [{name: http, port: 80}]\n", i)
	}
	c.Cast(b, docs...)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < services*3; i += 16 {
				in := cluster.Instance{ID: fmt.Sprintf("svc%d-%d", i/3, i%3), Service: fmt.Sprintf("svc%d", i/3), Namespace: "default",
					Node: "n1", IP: netip.AddrFrom4([4]byte{10, byte(200 + i%3), byte(i / 3 >> 8), byte(i / 3)}), Ready: true}
				if _, err := c.Ctl.RegisterInstance(ctx, in); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	// The part of each change that rebuilds the data plane's table from the
	// whole snapshot.
	b.Run("TableFrom", func(b *testing.B) {
		s := c.View.Snapshot()
		for b.Loop() {
			proxy.TableFrom(s)
		}
	})
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			ns := netnstest.New(b, "dp-apply")
			dp, err := proxy.Start(c.View, proxy.DataplaneConfig{
				Proxy: proxy.Config{Kernel: m.kernel, InterceptAddr: netip.MustParseAddrPort("127.0.0.1:0")},
				NFT:   proxy.NFTConfig{NetNS: ns.FD},
			})
			if err != nil {
				b.Fatal(err)
			}
			defer dp.Close()
			waitApplied(b, dp, c.Log.Tail())
			i := 0
			for b.Loop() {
				i++
				seq, err := c.Ctl.SetInstanceReady(ctx, "svc0-0", i%2 == 0)
				if err != nil {
					b.Fatal(err)
				}
				waitApplied(b, dp, seq)
			}
		})
	}
}

func waitApplied(b *testing.B, dp *proxy.Dataplane, seq uint64) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if s, ok := dp.Applied(); ok && s >= seq {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("seq %d not applied in 30s", seq)
		}
		time.Sleep(20 * time.Microsecond)
	}
}
