package rune

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"github.com/runenet/runenet/node"
)

// groupSockets returns the kernel's cookies of the fast path sockets held
// for addr, nil when none are.
func groupSockets(t *testing.T, addr string) []uint64 {
	t.Helper()
	reuseGroups.Lock()
	defer reuseGroups.Unlock()
	g := reuseGroups.byAddr[addr]
	if g == nil {
		return nil
	}
	var cookies []uint64
	for _, fd := range g.fds {
		c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_COOKIE)
		if err != nil {
			t.Fatal(err)
		}
		cookies = append(cookies, c)
	}
	return cookies
}

// TestFastPathReloadLosesNoQuery reloads CoreDNS again and again, once
// failing after the new instance's startup, turning the block's fast path
// off and on again, while a client asks every millisecond: every query is
// answered the first time it is asked, and a reload that keeps the fast
// path keeps its sockets (no socket leaves the SO_REUSEPORT group, which
// would renumber it under the steering).
func TestFastPathReloadLosesNoQuery(t *testing.T) {
	// Registered first, so it runs after the servers' cleanup: the failed
	// reload below must not leave a node runtime reference behind
	// (plugin/pkg/lifecycle).
	t.Cleanup(func() {
		if rt := node.Only(); rt != nil {
			t.Error("a node runtime is still open after the test: a reference leaked")
		}
	})
	s := newServers(t, "")
	var asked, lost atomic.Int64
	var last atomic.Value
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
		for {
			select {
			case <-stop:
				return
			default:
			}
			m, _, err := c.Exchange(new(dns.Msg).SetQuestion("api.default.rune.", dns.TypeA), s.fast)
			if err != nil || m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
				lost.Add(1)
				last.Store(fmt.Sprint(err, m))
			}
			asked.Add(1)
			time.Sleep(time.Millisecond) // a steady rate, not synchronization
		}
	}()
	// askedMore waits until the client has been answered n more times.
	askedMore := func(n int64) {
		t.Helper()
		want := asked.Load() + n
		for deadline := time.Now().Add(10 * time.Second); asked.Load() < want; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the client got %d answers in 10s", asked.Load()-want+n)
			}
		}
	}
	askedMore(50)
	first := groupSockets(t, s.fast)
	if len(first) == 0 {
		t.Fatal("no fast path sockets held for", s.fast)
	}
	for range 5 {
		s.core.reload(t, s.corefile)
		if got := groupSockets(t, s.fast); !slices.Equal(got, first) {
			t.Errorf("the fast path's sockets after a reload: %v, before: %v", got, first)
		}
		askedMore(50)
	}
	// A reload that fails after the new instance's startup (its extra
	// block's port is taken) leaves the old instance serving: its fast
	// path reads again.
	busy, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	failing := s.corefile + fmt.Sprintf("example.org:%d {\n\tbind 127.0.0.1\n\terrors\n}\n", busy.Addr().(*net.TCPAddr).Port)
	if _, err := s.core.inst.Restart(caddy.CaddyfileInput{Contents: []byte(failing), Filepath: "Corefile", ServerTypeName: "dns"}); err == nil {
		t.Fatal("a reload onto a taken port succeeded")
	}
	before := testutil.ToFloat64(fastPackets.answered)
	askedMore(50)
	if !fastAnsweredSince(before + 40) {
		t.Errorf("after a failed reload the fast path answered %v of 50 queries", testutil.ToFloat64(fastPackets.answered)-before)
	}
	off := strings.Replace(s.corefile, "node_name test\n\t\t\n", "node_name test\n\t\tfastpath off\n", 1)
	if off == s.corefile {
		t.Fatal("the test's Corefile has no fast block to turn off")
	}
	s.core.reload(t, off)
	if got := groupSockets(t, s.fast); got != nil {
		t.Errorf("fast path sockets still held with the fast path off: %v", got)
	}
	askedMore(50)
	s.core.reload(t, s.corefile)
	askedMore(50)
	close(stop)
	<-done
	if n := lost.Load(); n > 0 {
		t.Errorf("%d of %d queries not answered across the reloads; last: %v", n, asked.Load(), last.Load())
	}
	// The fast path is back and gets the packets.
	before = testutil.ToFloat64(fastPackets.answered)
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	for range 5 {
		if _, _, err := c.Exchange(new(dns.Msg).SetQuestion("api.default.rune.", dns.TypeA), s.fast); err != nil {
			t.Fatal(err)
		}
	}
	if !fastAnsweredSince(before + 4) {
		t.Errorf("after turning it on again the fast path answered %v of 5 queries", testutil.ToFloat64(fastPackets.answered)-before)
	}
}
