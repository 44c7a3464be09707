package pebbletest

import (
	"net"
	"testing"

	"github.com/miekg/dns"
)

// ServeDNS answers A ip for every name on ln, a TCP listener (Pebble's
// custom resolver speaks DNS over TCP), until the test ends; it returns
// ln's address, for Start.
func ServeDNS(tb testing.TB, ln net.Listener, ip net.IP) string {
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, qq := range q.Question {
			if qq.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
					A:   ip,
				})
			}
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	tb.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// LoopbackDNS is ServeDNS answering 127.0.0.1, on loopback: Pebble then
// validates against whatever listens on its HTTP port there.
func LoopbackDNS(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return ServeDNS(tb, ln, net.IPv4(127, 0, 0, 1))
}
