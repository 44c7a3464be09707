package runegate

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
)

func TestGate(t *testing.T) {
	ready, failing := false, []string{"view: not loaded", "proxy: interception not installed"}
	g := &Gate{
		Zones: []string{"rune.", "96.10.in-addr.arpa."},
		Check: func() (bool, []string) { return ready, failing },
		Next:  test.NextHandler(dns.RcodeNotAuth, nil),
	}
	serve := func(name string) (int, *dns.Msg) {
		m := new(dns.Msg).SetQuestion(name, dns.TypeA)
		m.SetEdns0(1232, false)
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		rcode, _ := g.ServeDNS(context.Background(), rec, m)
		return rcode, rec.Msg
	}

	for _, name := range []string{"api.default.rune.", "API.DEFAULT.RUNE.", "42.0.96.10.in-addr.arpa."} {
		rcode, m := serve(name)
		if rcode != dns.RcodeSuccess || m == nil || m.Rcode != dns.RcodeServerFailure {
			t.Fatalf("%s while not ready: rcode %d, reply %v; want a written SERVFAIL", name, rcode, m)
		}
		e, _ := m.IsEdns0().Option[0].(*dns.EDNS0_EDE)
		if e == nil || e.InfoCode != dns.ExtendedErrorCodeNotReady || !strings.Contains(e.ExtraText, "proxy: interception not installed") {
			t.Errorf("%s: EDE %v, want Not Ready (14) listing what is missing", name, e)
		}
	}
	if g.Ready() {
		t.Error("Ready() while a check fails")
	}
	// Names outside the gated zones are never held back.
	for _, name := range []string{"example.org.", "notrune.", "42.0.97.10.in-addr.arpa."} {
		if rcode, m := serve(name); rcode != dns.RcodeNotAuth || m != nil {
			t.Errorf("%s while not ready: rcode %d, reply %v; want it passed on", name, rcode, m)
		}
	}

	ready, failing = true, nil
	if rcode, m := serve("api.default.rune."); rcode != dns.RcodeNotAuth || m != nil {
		t.Errorf("api.default.rune. when ready: rcode %d, reply %v; want it passed on", rcode, m)
	}
	if !g.Ready() {
		t.Error("Ready() false with every check passing")
	}

	// Closing again is noticed within recheckOpen.
	ready, failing = false, []string{"proxy: interception lost"}
	time.Sleep(recheckOpen)
	if _, m := serve("api.default.rune."); m == nil || m.Rcode != dns.RcodeServerFailure {
		t.Errorf("after the data path stopped being ready: %v; want SERVFAIL", m)
	}
}

func TestSetup(t *testing.T) {
	for _, tc := range []struct{ input, err string }{
		{"runegate", ""},
		{"runegate rune. 10.96.0.0/16", ""},
		{"runegate {\n zones rune.\n}", "Testfile:2 - Error during parsing: unknown property \"zones\""},
		{"runegate\nrunegate", "only be used once"},
	} {
		err := setup(caddy.NewTestController("dns", tc.input))
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: error %v, want %q", tc.input, err, tc.err)
		}
	}
}
