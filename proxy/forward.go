package proxy

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/policy"
)

// Forward is an explicit loopback listener for one service port: what
// `rune port-forward SVC [LOCAL:]PORT` opens, in dev mode for a port that
// clashed, or on any node to reach a service from the host.
type Forward struct {
	ln *net.TCPListener
}

// Addr is where the forward listens.
func (f *Forward) Addr() netip.AddrPort { return f.ln.Addr().(*net.TCPAddr).AddrPort() }

// Close stops accepting; forwarded connections finish on their own.
func (f *Forward) Close() error { return f.ln.Close() }

// PortForward listens on local (a loopback address; port 0 lets the kernel
// choose) and forwards each connection to TCP port `port` of svc. It follows
// table updates like every other listener: endpoints may change under it, and
// if the port goes away new connections are refused. A connection svc's
// policy refuses is reset like any other, logged, and handed to denied (if
// not nil), so that whoever opened the forward learns why.
func (p *Proxy) PortForward(svc cluster.NamespacedName, port uint16, local netip.AddrPort, denied func(netip.AddrPort, policy.Verdict)) (*Forward, error) {
	if !local.Addr().IsLoopback() {
		return nil, fmt.Errorf("port-forward: %s is not a loopback address; forwards only listen on loopback", local.Addr())
	}
	key := portKey{svc, port}
	if _, ok := p.routes.Load().byPort.Get(key); !ok {
		return nil, fmt.Errorf("port-forward: service %s has no TCP port %d", svc, port)
	}
	ln, err := listenTCP("tcp", local)
	if err != nil {
		return nil, fmt.Errorf("port-forward %s:%d: %w", svc, port, err)
	}
	refused := func(from netip.AddrPort, v policy.Verdict) {
		p.cfg.Logger.Warn("port-forward: connection denied by policy", "service", svc, "port", port, "from", from, "policy", v.Policy, "reason", v.Reason)
		if denied != nil {
			denied(from, v)
		}
	}
	go p.serveTCP(ln, func(*net.TCPConn) *route { return p.routes.Load().port(key) }, refused)
	return &Forward{ln: ln}, nil
}
