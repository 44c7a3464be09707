package ingress

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
	"sync"
)

// Loop detection. An endpoint that is this ingress itself (in dev mode an
// instance on 127.0.0.x with the service port 8080 is one) would have every
// request forwarded to itself until something gives out. Such endpoints are
// left out of the routes; what gets past that (a loop through another proxy,
// an address that is ours under another name) is caught by the Via entry
// every forwarded request carries: a request that comes back with ours is
// answered 508 Loop Detected at once.

// via is this edge's entry in the Via header of forwarded requests
// (RFC 9110 7.6.3).
type via struct {
	token string // "rune-NODE-RANDOM": unique to this ingress, even beside another in the same process
	tok   []byte // token, for comparing with fields without converting
	field []byte // "Via: 1.1 TOKEN\r\n", as the fast path writes it
	value string // "1.1 TOKEN", as net/http's path adds it

	logged sync.Map // route host → struct{}: a loop is logged once per host
}

func newVia(node string) *via {
	var r [4]byte
	rand.Read(r[:])
	clean := strings.Map(func(c rune) rune {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' {
			return c
		}
		return '-'
	}, node)
	v := &via{token: "rune-" + clean + "-" + hex.EncodeToString(r[:])}
	v.tok = []byte(v.token)
	v.value = "1.1 " + v.token
	v.field = []byte("Via: " + v.value + "\r\n")
	return v
}

// in reports whether one of the Via field values names this edge.
func (v *via) in(values []string) bool {
	for _, val := range values {
		if strings.Contains(val, v.token) {
			return true
		}
	}
	return false
}

// loop counts and (once per host) logs a request that came back.
func (i *Ingress) loop(host string) {
	ingressLoops.WithLabelValues(host).Inc()
	if _, seen := i.via.logged.LoadOrStore(host, struct{}{}); !seen {
		i.logger.Warn("request loop: a request forwarded by this ingress came back to it; answering 508 (check the service's endpoints and any proxy in front of them)", "host", host, "via", i.via.token)
	}
}

// selfAddrs is what the listeners are bound to, for refusing endpoints that
// are the ingress itself.
type selfAddrs struct {
	ports map[uint16]netip.Addr // listener port → bound address (unspecified for a wildcard)
	local map[netip.Addr]bool   // this host's addresses, for wildcard listeners
}

func newSelfAddrs(lns ...net.Listener) selfAddrs {
	s := selfAddrs{ports: map[uint16]netip.Addr{}, local: map[netip.Addr]bool{}}
	wildcard := false
	for _, ln := range lns {
		ap := ln.Addr().(*net.TCPAddr).AddrPort()
		s.ports[ap.Port()] = ap.Addr().Unmap()
		wildcard = wildcard || ap.Addr().IsUnspecified()
	}
	if wildcard {
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if pfx, err := netip.ParsePrefix(a.String()); err == nil {
				s.local[pfx.Addr().Unmap()] = true
			}
		}
	}
	return s
}

// is reports whether a connection to addr (ip:port) would reach one of our
// listeners.
func (s selfAddrs) is(addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return false
	}
	bound, ok := s.ports[ap.Port()]
	if !ok {
		return false
	}
	ip := ap.Addr().Unmap()
	if bound.IsUnspecified() {
		return ip.IsLoopback() || ip.IsUnspecified() || s.local[ip]
	}
	return ip == bound
}
