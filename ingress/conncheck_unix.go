//go:build unix

package ingress

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// connAlive peeks at the socket without blocking: an idle keep-alive
// connection the peer has closed reads EOF, one that is fine would block.
// Costs one syscall, so the fast path only asks before sending a request it
// could not send again.
func connAlive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		alive = err == unix.EAGAIN // nothing to read and not closed
		return true
	})
	return err == nil && alive
}
