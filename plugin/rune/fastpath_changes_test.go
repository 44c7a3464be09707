package rune

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/runenet/runenet/cluster"
)

// TestFastPathFollowsChanges changes a handful of services at random
// (created, ports changed, deleted) and after each change asks the fast path
// and the full chain the same questions about all of them: the fast path's
// workers keep answers across snapshots for the services that did not
// change, so a stale one shows as a difference. Each question is asked
// several times to reach both workers.
func TestFastPathFollowsChanges(t *testing.T) {
	s := newServers(t, "")
	ctl, view := s.rt.Controller(), s.rt.View()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 17))
	ports := []string{
		"  - {name: http, port: 80}\n",
		"  - {name: dns, port: 53, protocol: UDP}\n",
		"  - {name: grpc, port: 9000}\n",
	}
	const services = 6
	present := map[int]bool{}
	questions := func() []dns.Question {
		var qs []dns.Question
		for i := range services {
			n := fmt.Sprintf("svc%d.churn.rune.", i)
			qs = append(qs,
				dns.Question{Name: n, Qtype: dns.TypeA, Qclass: dns.ClassINET},
				dns.Question{Name: n, Qtype: dns.TypeAAAA, Qclass: dns.ClassINET},
				dns.Question{Name: "_http._tcp." + n, Qtype: dns.TypeSRV, Qclass: dns.ClassINET},
				dns.Question{Name: "_dns._udp." + n, Qtype: dns.TypeSRV, Qclass: dns.ClassINET},
				dns.Question{Name: "_grpc._tcp." + n, Qtype: dns.TypeSRV, Qclass: dns.ClassINET},
			)
			if e, ok := view.Snapshot().Service(cluster.NamespacedName{Namespace: "churn", Name: fmt.Sprint("svc", i)}); ok {
				rev, _ := dns.ReverseAddr(e.Value.VIP.String())
				qs = append(qs, dns.Question{Name: rev, Qtype: dns.TypePTR, Qclass: dns.ClassINET})
			}
		}
		return append(qs, dns.Question{Name: "churn.rune.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	}
	before := testutil.ToFloat64(fastPackets.answered)
	id := uint16(1)
	for round := range 40 {
		i := rng.IntN(services)
		name := fmt.Sprint("svc", i)
		var seq uint64
		var err error
		var change string
		if present[i] && rng.IntN(3) == 0 {
			change = "delete " + name
			seq, err = ctl.DeleteService(ctx, cluster.NamespacedName{Namespace: "churn", Name: name})
			delete(present, i)
		} else {
			var ps []string
			for _, p := range ports {
				if rng.IntN(2) == 0 {
					ps = append(ps, p)
				}
			}
			change = fmt.Sprintf("cast %s with %d ports", name, len(ps))
			_, seq, err = ctl.Cast(ctx, []cluster.SourceFile{{Name: name + ".yaml", Data: []byte(service("churn", name, ps...))}})
			present[i] = true
		}
		if err != nil {
			t.Fatalf("round %d, %s: %v", round, change, err)
		}
		if err := view.WaitFor(ctx, seq); err != nil {
			t.Fatal(err)
		}
		for _, q := range questions() {
			m := &dns.Msg{Question: []dns.Question{q}}
			m.RecursionDesired = true
			for range 4 {
				m.Id = id
				id++
				b, err := m.Pack()
				if err != nil {
					t.Fatal(err)
				}
				fast, full := exchange(t, s.fast, b, 5*time.Second), exchange(t, s.full, b, 5*time.Second)
				if !bytes.Equal(fast, full) {
					t.Fatalf("round %d, after %s: %s %s: fast path and full chain differ\nfast: %v\nfull: %v",
						round, change, dns.TypeToString[q.Qtype], q.Name, unpack(fast), unpack(full))
				}
			}
		}
	}
	if !fastAnsweredSince(before) {
		t.Fatal("the fast path answered none of the queries: it is not in front")
	}
}
