package raft

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// peerQuiet peeks at conn without blocking and without consuming: true
// when the socket is open with nothing to read. (A read with a deadline
// already past never reaches the socket, so it cannot tell.)
func peerQuiet(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	quiet := false
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		_, _, rerr := unix.Recvfrom(int(fd), buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		quiet = rerr == unix.EAGAIN
		return true // done either way; never wait for readiness
	})
	return err == nil && quiet
}
