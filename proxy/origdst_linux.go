package proxy

import (
	"encoding/binary"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/runenet/runenet/cluster"
)

// resolveOriginalDst maps an intercepted connection to its service port by
// the address the client dialled: nftables' redirect rewrote the destination,
// and conntrack still knows the original (SO_ORIGINAL_DST).
func (p *Proxy) resolveOriginalDst(c *net.TCPConn) *route {
	dst, ok := originalDst(c)
	if !ok {
		return nil
	}
	return p.routes.Load().front(frontKey{cluster.TCP, dst})
}

func originalDst(c *net.TCPConn) (netip.AddrPort, bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, false
	}
	var dst netip.AddrPort
	var serr error
	err = rc.Control(func(fd uintptr) {
		// SO_ORIGINAL_DST fills a sockaddr_in; IPv6Mreq is merely a 20-byte
		// buffer getsockopt can write it into.
		var m *unix.IPv6Mreq
		m, serr = unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
		if serr != nil {
			return
		}
		b := m.Multiaddr
		port := binary.BigEndian.Uint16(b[2:4])
		dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]}), port)
	})
	if err != nil || serr != nil {
		return netip.AddrPort{}, false
	}
	return dst, true
}
