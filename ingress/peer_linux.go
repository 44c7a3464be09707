package ingress

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// peerGone reports, without blocking, whether the peer of c (a TCP
// connection) has closed or reset it. POLLRDHUP sees a close even behind
// data not read yet (a TLS close_notify, a pipelined request), which a peek
// cannot.
func peerGone(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	err = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 {
			gone = fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
		}
	})
	return err != nil || gone
}
