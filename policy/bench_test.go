package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
)

const (
	benchRules     = 1000
	benchCIDRs     = 10000 // per direction
	benchInstances = 100   // local instances of web-<k>
)

// bigPolicyDoc is service big with benchRules ingress and benchRules egress
// rules over benchCIDRs CIDR peers each (random prefixes of 10/8, /16 to
// /32), a service peer in every fifth rule, and a mix of named, numbered
// and absent ports.
func bigPolicyDoc(r *rand.Rand) string {
	var b strings.Builder
	b.WriteString(`service:
  name: big
  ports:
    - {name: http, port: 8080}
    - {name: grpc, port: 9090}
    - {name: metrics, port: 9100}
    - {name: dns, port: 5353, protocol: udp}
  networkPolicy:
`)
	ingressPorts := []string{"[http]", "[grpc, 9100]", "", "[dns]"}
	egressPorts := []string{"[443]", "[5432, 6379]", "", "[53]"}
	for _, dir := range []string{"ingress", "egress"} {
		fmt.Fprintf(&b, "    %s:\n", dir)
		key, ports := "from", ingressPorts
		if dir == "egress" {
			key, ports = "to", egressPorts
		}
		for i := range benchRules {
			fmt.Fprintf(&b, "      - %s:\n", key)
			for range benchCIDRs / benchRules {
				bits := 16 + r.IntN(17)
				a := netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
				fmt.Fprintf(&b, "          - cidr: %s\n", netip.PrefixFrom(a, bits).Masked())
			}
			if i%5 == 0 {
				fmt.Fprintf(&b, "          - service: web-%d\n", r.IntN(benchInstances))
			}
			if p := ports[i%len(ports)]; p != "" {
				fmt.Fprintf(&b, "        ports: %s\n", p)
			}
		}
	}
	return b.String()
}

// bigCluster casts the big policy and benchInstances local instances of
// services web-0..web-N (172.18.0.0/16) through a real controller.
func bigCluster(b *testing.B) (*testCluster, uint64) {
	r := rand.New(rand.NewPCG(7, 8))
	c := newTestCluster(b, cluster.ViewOptions{})
	docs := []string{bigPolicyDoc(r)}
	for k := range benchInstances {
		docs = append(docs, fmt.Sprintf("service:\n  name: web-%d\n  ports: [{name: http, port: 80}]\n", k))
	}
	c.Cast(b, docs...)
	var seq uint64
	for k := range benchInstances {
		var err error
		seq, err = c.Ctl.RegisterInstance(context.Background(), cluster.Instance{
			ID: fmt.Sprintf("web-%d-1", k), Service: fmt.Sprintf("web-%d", k), Namespace: "default",
			Node: localNode, IP: netip.AddrFrom4([4]byte{172, 18, byte(k / 256), byte(k % 256)}), Ready: true,
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return c, seq
}

// benchConns is a fixed mix of sources: local instances, addresses inside
// the CIDR space, addresses outside it.
func benchConns(n int) (srcs []netip.Addr, ports []uint16) {
	r := rand.New(rand.NewPCG(9, 10))
	for range n {
		switch r.IntN(3) {
		case 0:
			k := r.IntN(benchInstances)
			srcs = append(srcs, netip.AddrFrom4([4]byte{172, 18, byte(k / 256), byte(k % 256)}))
		case 1:
			srcs = append(srcs, netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))}))
		default:
			srcs = append(srcs, netip.AddrFrom4([4]byte{192, 0, 2, byte(r.IntN(256))}))
		}
		ports = append(ports, []uint16{8080, 9090, 9100, 5353, 443, 53}[r.IntN(6)])
	}
	return srcs, ports
}

// BenchmarkDecision is the per-connection cost the proxy pays, through the
// Engine (atomic load and stale check included).
func BenchmarkDecision(b *testing.B) {
	c, seq := bigCluster(b)
	e := NewEngine(c.View, localNode, EngineOptions{})
	runEngine(b, e)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.WaitFor(ctx, seq); err != nil {
		b.Fatal(err)
	}
	srcs, ports := benchConns(4096)
	big := cluster.NamespacedName{Namespace: "default", Name: "big"}
	bigInstance := netip.MustParseAddr("172.17.9.9")
	// The egress source must be a local instance of big.
	if _, err := c.Ctl.RegisterInstance(ctx, cluster.Instance{ID: "big-1", Service: "big", Namespace: "default", Node: localNode, IP: bigInstance, Ready: true}); err != nil {
		b.Fatal(err)
	}
	if err := e.WaitFor(ctx, c.View.Snapshot().Seq); err != nil {
		b.Fatal(err)
	}
	b.Run("ingress", func(b *testing.B) {
		allowed := 0
		i := 0
		for b.Loop() {
			if e.Ingress(srcs[i%len(srcs)], big, ports[i%len(ports)], cluster.TCP).Allowed {
				allowed++
			}
			i++
		}
		b.ReportMetric(float64(allowed)/float64(i), "allowed/op")
	})
	b.Run("egress", func(b *testing.B) {
		allowed := 0
		i := 0
		for b.Loop() {
			if e.Egress(bigInstance, srcs[i%len(srcs)], ports[i%len(ports)], cluster.TCP).Allowed {
				allowed++
			}
			i++
		}
		b.ReportMetric(float64(allowed)/float64(i), "allowed/op")
	})
	b.Run("compile", func(b *testing.B) {
		s := c.View.Snapshot()
		for b.Loop() {
			Compile(s, localNode)
		}
	})
}

// BenchmarkPolicyUpdateEnforced: a cast through the controller until the
// Engine decides by it, on a node that also holds the big policy.
func BenchmarkPolicyUpdateEnforced(b *testing.B) {
	c, _ := bigCluster(b)
	c.Cast(b, apiDoc("web"), webDoc)
	c.instance(b, "web-1", "default", "web", localNode, webIP.String())
	e := NewEngine(c.View, localNode, EngineOptions{})
	runEngine(b, e)
	var lat []time.Duration
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		// Alternate who may connect, so each cast flips web's verdict.
		from, want := "other", false
		if i%2 == 1 {
			from, want = "web", true
		}
		start := time.Now()
		seq := c.Cast(b, apiDoc(from))
		if err := e.WaitFor(ctx, seq); err != nil {
			b.Fatal(err)
		}
		if v := e.Ingress(webIP, apiName, 8080, cluster.TCP); v.Allowed != want {
			b.Fatalf("after update %d: %+v, want allowed=%v", i, v, want)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
