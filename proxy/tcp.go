package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/runenet/runenet/balance"
	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/policy"
)

type tcpFront struct{ ln *net.TCPListener }

func (f tcpFront) Close() error { return f.ln.Close() }
func (f tcpFront) port() uint16 { return uint16(f.ln.Addr().(*net.TCPAddr).Port) }

// serveTCP accepts until ln closes; resolve maps a connection to the service
// port it was addressed to; denied (if not nil) hears of every connection
// policy refuses.
func (p *Proxy) serveTCP(ln *net.TCPListener, resolve func(*net.TCPConn) *route, denied func(netip.AddrPort, policy.Verdict)) {
	var backoff time.Duration
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off instead of spinning, and log
			// once per streak rather than once per attempt.
			if backoff == 0 {
				p.cfg.Logger.Warn("proxy: accept failing; backing off", "addr", ln.Addr(), "err", err)
				backoff = 5 * time.Millisecond
			}
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 0
		go p.handleTCP(c, resolve, denied)
	}
}

func (p *Proxy) handleTCP(c *net.TCPConn, resolve func(*net.TCPConn) *route, denied func(netip.AddrPort, policy.Verdict)) {
	r := resolve(c)
	if r == nil {
		unknownVIP(cluster.TCP).Inc()
		reset(c)
		return
	}
	if p.cfg.Stale != nil && p.cfg.Stale() {
		r.metrics().stale.Inc()
		reset(c)
		return
	}
	// The peer address is cached on the conn: no syscall, no allocation.
	from := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	if v, ok := p.admit(from.Addr(), r); !ok {
		if denied != nil {
			denied(from, v)
		}
		reset(c)
		return
	}
	up, ep := p.dial(r)
	if up == nil {
		reset(c)
		return
	}
	r.metrics().active.Inc()
	if err := p.relay.start(c, up.(*net.TCPConn), r.metrics(), ep); err != nil {
		p.cfg.Logger.Warn("proxy: connection reset: cannot hand it to an event loop", "service", r.sp.Service, "err", err)
	}
}

// keepAlive turns on TCP keep-alive with the system's timing (on Linux,
// probes after 2 hours idle): a peer that vanished without a FIN does not
// pin a proxied connection forever. One setsockopt, where Go's default
// (15 s probes) takes four per socket, eight per proxied connection — a
// measurable share of the cost of a new connection.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: -1, Interval: -1, Count: -1}

func listenTCP(network string, addr netip.AddrPort) (*net.TCPListener, error) {
	lc := net.ListenConfig{KeepAliveConfig: keepAlive}
	ln, err := lc.Listen(context.Background(), network, addr.String())
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}

// reset refuses a connection with an RST, so the client fails at once
// instead of waiting for a timeout.
func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

// dial connects to an endpoint of r, trying up to DialAttempts endpoints;
// each failure ejects that endpoint for a back-off. The endpoint's active
// count includes the returned connection. It counts the connection's result.
func (p *Proxy) dial(r *route) (net.Conn, *endpoint) {
	if len(r.eps) == 0 {
		r.metrics().noEndpoints.Inc()
		return nil, nil
	}
	network := "tcp4"
	if r.sp.Protocol == cluster.UDP {
		network = "udp4"
	}
	var triedBuf [4]*endpoint
	tried := triedBuf[:0]
	for range p.cfg.DialAttempts {
		now := time.Now().UnixNano()
		ep := balance.Pick(r.eps, tried, now)
		if ep == nil {
			break
		}
		// Counted before the connect completes, so concurrent picks see it.
		ep.active.Add(1)
		// By string: Dialer.DialTCP's netip form binds to its (empty) local
		// address first, a bind(2) per connection that also takes the
		// ephemeral port the slow way.
		c, err := p.dialer.Dial(network, ep.dial)
		if err == nil {
			ep.Succeeded()
			r.metrics().ok.Inc()
			return c, ep
		}
		ep.active.Add(-1)
		r.metrics().dialFailures.Inc()
		if ep.Failed(now, p.cfg.EjectBase, p.cfg.EjectMax) {
			r.metrics().ejections.Inc()
		}
		p.cfg.Logger.Debug("proxy: connect to endpoint failed; ejected", "service", r.sp.Service, "endpoint", ep.addr, "err", err)
		tried = append(tried, ep)
	}
	r.metrics().dialFailed.Inc()
	return nil, nil
}
