//go:build unix

// Package connpeek tells, without blocking and without consuming, whether
// an idle connection is still open with nothing to read: what a pool asks
// before reusing one, since a read with a deadline already past never
// reaches the socket and so cannot tell.
package connpeek

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// Idle peeks at c's socket: idle is true when it is open with nothing to
// read (a closed one reads EOF, stray bytes read data). checked is false
// when c has no socket to peek at (a pipe, a wrapper), and the caller
// decides what that means.
func Idle(c net.Conn) (idle, checked bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false, true
	}
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		idle = rerr == unix.EAGAIN
		return true // done either way; never wait for readiness
	})
	return err == nil && idle, true
}
