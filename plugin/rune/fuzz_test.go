package rune

import (
	"context"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"

	"github.com/runenet/runenet/plugin/runegate"
)

// FuzzChain feeds arbitrary wire messages through runegate → rune → a
// terminal plugin, the way the CoreDNS server calls them (messages without a
// question never reach plugins), and checks that nothing panics and that
// every reply packs within the client's buffer.
//
//	go test ./plugin/rune -run '^$' -fuzz FuzzChain -fuzztime 60s
func FuzzChain(f *testing.F) {
	c, rep := withServices(f, time.Minute)
	for _, ac := range answerTests {
		req, _ := ac.request(f, rep)
		b, err := req.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, q := range []*dns.Msg{query("api.default.rune.", dns.TypeA, true), query("1.0.97.10.in-addr.arpa.", dns.TypePTR, true)} {
		b, _ := q.Pack()
		f.Add(b)
	}

	r := c.handler()
	r.Next = test.NextHandler(dns.RcodeRefused, nil)
	open := true
	chain := &runegate.Gate{Zones: []string{"rune.", "in-addr.arpa."}, Check: func() (bool, []string) { return open, []string{"fuzz"} }, Next: r}

	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(dns.Msg)
		if req.Unpack(data) != nil || len(req.Question) == 0 {
			return
		}
		open = len(data)%7 != 0 // exercise the closed gate too
		for _, tcp := range []bool{false, true} {
			rec := dnstest.NewRecorder(&test.ResponseWriter{TCP: tcp})
			w := request.NewScrubWriter(req, rec)
			chain.ServeDNS(context.Background(), w, req)
			if rec.Msg == nil {
				continue
			}
			out, err := rec.Msg.Pack()
			if err != nil {
				t.Fatalf("reply does not pack: %v\n%v", err, rec.Msg)
			}
			state := request.Request{Req: req, W: rec}
			if len(out) > state.Size() && !rec.Msg.Truncated {
				t.Fatalf("%d-byte reply over a %d-byte buffer without TC", len(out), state.Size())
			}
		}
	})
}
