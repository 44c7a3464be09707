package proxy

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/runenet/runenet/cluster"
)

// udpFront is one UDP socket serving one service port. Each client address
// gets a session: a connected socket to one endpoint, kept until it has been
// idle for UDPIdleTimeout, so a flow sticks to its endpoint like a TCP
// connection does.
type udpFront struct {
	p       *Proxy
	conn    *net.UDPConn
	pc      *ipv4.PacketConn
	resolve func() *route

	mu       sync.Mutex
	closed   bool
	sessions map[netip.AddrPort]*udpSession
}

type udpSession struct {
	client *net.UDPAddr
	// replyFrom is the local address the client's datagrams arrived at (after
	// NAT). Replies must leave from it, or conntrack will not map them back
	// to the VIP and the client's connected socket drops them.
	replyFrom net.IP
	up        *net.UDPConn
	ep        *endpoint
	r         *route
	last      atomic.Int64 // unix nanos of the last datagram either way
}

func (p *Proxy) listenUDP(bind netip.AddrPort, resolve func() *route) (*udpFront, error) {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(bind))
	if err != nil {
		return nil, err
	}
	pc := ipv4.NewPacketConn(c)
	if err := pc.SetControlMessage(ipv4.FlagDst, true); err != nil {
		c.Close()
		return nil, err
	}
	f := &udpFront{p: p, conn: c, pc: pc, resolve: resolve, sessions: map[netip.AddrPort]*udpSession{}}
	go f.serve()
	return f, nil
}

func (f *udpFront) port() uint16 { return uint16(f.conn.LocalAddr().(*net.UDPAddr).Port) }

// Close closes the socket and ends every session.
func (f *udpFront) Close() error {
	f.mu.Lock()
	f.closed = true
	for _, s := range f.sessions {
		s.up.Close()
	}
	f.mu.Unlock()
	return f.conn.Close()
}

func (f *udpFront) serve() {
	buf := make([]byte, 64<<10)
	for {
		n, cm, src, err := f.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s := f.session(src.(*net.UDPAddr), cm)
		if s == nil {
			continue
		}
		s.last.Store(time.Now().UnixNano())
		if _, err := s.up.Write(buf[:n]); err == nil {
			s.r.metrics().bytesTo.Add(float64(n))
		}
	}
}

// session finds or starts the client's flow; nil means the datagram is
// dropped (counted by result).
func (f *udpFront) session(client *net.UDPAddr, cm *ipv4.ControlMessage) *udpSession {
	ap := client.AddrPort()
	key := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	f.mu.Lock()
	s := f.sessions[key]
	f.mu.Unlock()
	if s != nil {
		return s
	}
	r := f.resolve()
	if r == nil {
		unknownVIP(cluster.UDP).Inc()
		return nil
	}
	if f.p.cfg.Stale != nil && f.p.cfg.Stale() {
		r.metrics().stale.Inc()
		return nil
	}
	if _, ok := f.p.admit(key.Addr(), r); !ok {
		return nil
	}
	c, ep := f.p.dial(r)
	if c == nil {
		return nil
	}
	s = &udpSession{client: client, up: c.(*net.UDPConn), ep: ep, r: r}
	if cm != nil {
		s.replyFrom = cm.Dst
	}
	s.last.Store(time.Now().UnixNano())
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		c.Close()
		ep.active.Add(-1)
		return nil
	}
	f.sessions[key] = s
	f.mu.Unlock()
	r.metrics().active.Inc()
	go f.replies(key, s)
	return s
}

// replies relays the endpoint's datagrams to the client until the flow has
// been idle for UDPIdleTimeout or the endpoint refuses (then the next
// datagram starts a new flow on another endpoint).
func (f *udpFront) replies(key netip.AddrPort, s *udpSession) {
	idle := f.p.cfg.UDPIdleTimeout
	buf := make([]byte, 64<<10)
	cm := &ipv4.ControlMessage{Src: s.replyFrom}
	for {
		s.up.SetReadDeadline(time.Unix(0, s.last.Load()).Add(idle))
		n, err := s.up.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, s.last.Load())) < idle {
				continue // the client sent something meanwhile
			}
			if errors.Is(err, syscall.ECONNREFUSED) && s.ep.Failed(time.Now().UnixNano(), f.p.cfg.EjectBase, f.p.cfg.EjectMax) {
				s.r.metrics().ejections.Inc()
			}
			break
		}
		s.last.Store(time.Now().UnixNano())
		if _, err := f.pc.WriteTo(buf[:n], cm, s.client); err == nil {
			s.r.metrics().bytesFrom.Add(float64(n))
		}
	}
	f.mu.Lock()
	if f.sessions[key] == s {
		delete(f.sessions, key)
	}
	f.mu.Unlock()
	s.up.Close()
	s.ep.active.Add(-1)
	s.r.metrics().active.Dec()
}
