package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/badger"
)

// populate writes n services with 3 ready instances each straight into lg, in
// the shape the controller writes them, without paying for n casts.
func populate(tb testing.TB, lg orderedlog.Log, n int) {
	tb.Helper()
	ctx := context.Background()
	cidr := netip.MustParsePrefix("10.64.0.0/12") // room for 100,000 VIPs
	if err := Bootstrap(ctx, lg, cidr); err != nil {
		tb.Fatal(err)
	}
	addr := func(base uint32, i int) netip.Addr {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], base+uint32(i))
		return netip.AddrFrom4(b)
	}
	vipBase := binary.BigEndian.Uint32(cidr.Addr().AsSlice())
	podBase := binary.BigEndian.Uint32([]byte{172, 16, 0, 0})
	now := time.Now().UTC()
	const perBatch = 500
	for start := 0; start < n; start += perBatch {
		var ops []orderedlog.Op
		for i := start; i < min(start+perBatch, n); i++ {
			nn := NamespacedName{Namespace: fmt.Sprintf("ns%d", i%100), Name: fmt.Sprintf("svc%d", i)}
			vip := addr(vipBase, i+1)
			spec := Service{Name: nn.Name, Namespace: nn.Namespace, Ports: []Port{{Name: "http", Port: 80, Protocol: TCP, TargetPort: 8080}}}
			ep := Endpoints{Service: nn.Name, Namespace: nn.Namespace, Ports: endpointPorts(&spec)}
			for j := 0; j < 3; j++ {
				in := Instance{ID: fmt.Sprintf("%s-%d", nn.Name, j), Service: nn.Name, Namespace: nn.Namespace, Node: "node-1", IP: addr(podBase, i*3+j), Ready: true, Updated: now}
				ops = append(ops, orderedlog.Put(instanceKey(in.Node, in.ID), in.encode()))
				ep.Addresses = append(ep.Addresses, EndpointAddress{Instance: in.ID, IP: in.IP, Node: in.Node})
			}
			ops = append(ops,
				orderedlog.Put(vipKey(vip), (&VIPAllocation{IP: vip, Namespace: nn.Namespace, Service: nn.Name}).encode()),
				orderedlog.Put(serviceKey(nn), (&ServiceRecord{Spec: spec, VIP: vip, Created: now, Updated: now}).encode()),
				orderedlog.Put(endpointsKey(nn), ep.encode()),
			)
		}
		if _, err := lg.Propose(ctx, ops); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkViewLoad100k: a store holding 100,000 services with 3 endpoints
// each, loaded into a fresh View (list + materialize). Bar: ≤ 2 s.
//
//	go test ./cluster -run '^$' -bench ViewLoad100k -benchtime 3x
func BenchmarkViewLoad100k(b *testing.B) {
	lg, err := badger.Open(b.TempDir(), badger.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer lg.Close()
	const services = 100_000
	populate(b, lg, services)
	runtime.GC()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := LoadFrom(context.Background(), lg)
		if err != nil {
			b.Fatal(err)
		}
		if got := s.NumServices(); got != services {
			b.Fatalf("loaded %d services, want %d", got, services)
		}
	}
	b.StopTimer()
	// The View's size: live heap holding one snapshot minus live heap without.
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s, err := LoadFrom(context.Background(), lg)
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(s)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "MiB-view")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/load")
}

// BenchmarkAllocateVIP: one cast of a new service into a /16 that is 90% full.
func BenchmarkCastIntoFullCIDR(b *testing.B) {
	n := newNode(b, "10.96.0.0/20") // 4094 hosts
	ctx := context.Background()
	var files []SourceFile
	for i := 0; i < 3600; i++ {
		files = append(files, svcYAML(fmt.Sprintf("s%d", i), "default", ""))
	}
	if _, _, err := n.ctl.Cast(ctx, files); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("x%d", i%400)
		if _, _, err := n.ctl.Cast(ctx, []SourceFile{svcYAML(name, "default", "")}); err != nil {
			b.Fatal(err)
		}
		if _, err := n.ctl.DeleteService(ctx, NamespacedName{"default", name}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInstanceFlips: health flips of instances of 64 different services
// from 64 concurrent callers (an orchestrator's burst), each flip a durable
// write that rewrites the service's endpoints. Writes to different services
// do not wait for each other, so the log group-commits them.
//
//	go test ./cluster -run '^$' -bench InstanceFlips -benchtime 2000x
func BenchmarkInstanceFlips(b *testing.B) {
	n := newNode(b, "10.96.0.0/16")
	ctx := context.Background()
	const services = 64
	var files []SourceFile
	for i := 0; i < services; i++ {
		files = append(files, svcYAML(fmt.Sprintf("s%d", i), "default", ""))
	}
	if _, _, err := n.ctl.Cast(ctx, files); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < services; i++ {
		in := Instance{ID: fmt.Sprintf("s%d-1", i), Service: fmt.Sprintf("s%d", i), Node: "n1", IP: netip.AddrFrom4([4]byte{172, 16, 0, byte(i + 1)}), Ready: true}
		if _, err := n.ctl.RegisterInstance(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.SetParallelism(services / 2) // 2 cores × 32 = 64 callers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprintf("s%d-1", next.Add(1)-1)
		ready := false
		for pb.Next() {
			if _, err := n.ctl.SetInstanceReady(ctx, id, ready); err != nil {
				b.Error(err)
				return
			}
			ready = !ready
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}
