// Command vipproxy runs the data plane with a fixed table, for benchmarks:
// each -map VIP:PORT=BACKEND:PORT becomes a service port, intercepted with
// nftables in the current network namespace; with -kernel, TCP is forwarded
// by the kernel (nftables DNAT) as with runed --forward kernel. It prints
// "ready" once the interception is installed and removes it (guard included) when stdin
// closes. Run it only inside a namespace made for the benchmark.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/proxy"
)

type maps []string

func (m *maps) String() string     { return strings.Join(*m, ",") }
func (m *maps) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var ms maps
	flag.Var(&ms, "map", "VIP:PORT=BACKEND:PORT (repeatable)")
	cidr := flag.String("cidr", "10.96.0.0/16", "cluster CIDR")
	kernel := flag.Bool("kernel", false, "forward TCP in the kernel (nftables DNAT)")
	cpuProfile := flag.String("cpuprofile", "", "if set, write a CPU profile of the run here")
	udpEcho := flag.String("udpecho", "", "if set, also echo UDP packets on this address: a stand-in for the DNS server sharing runed's process with the proxy")
	flag.Parse()
	prefix := netip.MustParsePrefix(*cidr)
	t := &proxy.Table{CIDR: prefix}
	for i, m := range ms {
		vip, be, ok := strings.Cut(m, "=")
		if !ok {
			log.Fatalf("-map %q: want VIP:PORT=BACKEND:PORT", m)
		}
		t.Ports = append(t.Ports, proxy.ServicePort{
			Service:   cluster.NamespacedName{Namespace: "bench", Name: fmt.Sprint("svc", i)},
			Protocol:  cluster.TCP,
			VIP:       netip.MustParseAddrPort(vip),
			Endpoints: []netip.AddrPort{netip.MustParseAddrPort(be)},
		})
	}
	p, err := proxy.New(proxy.Config{Kernel: *kernel})
	if err != nil {
		log.Fatal(err)
	}
	nft, err := proxy.NewNFT(proxy.NFTConfig{})
	if err != nil {
		log.Fatal(err)
	}
	if err := nft.Sync(prefix, p.Update(t)); err != nil {
		log.Fatal(err)
	}
	// The table never changes here, so one heartbeat covers the run.
	if err := nft.Heartbeat(24 * time.Hour); err != nil {
		log.Fatal(err)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if *udpEcho != "" {
		pc, err := net.ListenPacket("udp", *udpEcho)
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			b := make([]byte, 512)
			for {
				n, from, err := pc.ReadFrom(b)
				if err != nil {
					return
				}
				pc.WriteTo(b[:n], from)
			}
		}()
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	p.Close()
	if err := nft.Close(); err != nil {
		log.Print(err)
	}
	if err := proxy.RemoveGuard(proxy.NFTConfig{}, prefix); err != nil {
		log.Print(err)
	}
}
