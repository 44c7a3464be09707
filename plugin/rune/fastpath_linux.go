package rune

import (
	"context"
	"fmt"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// listenReusePort opens a UDP socket on addr in the SO_REUSEPORT group
// CoreDNS's socket on it is in.
func listenReusePort(addr string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// steer attaches a reuseport program to the group of the socket fd that
// hands every packet to socket base + (CPU mod n): the kernel numbers a
// group's sockets in the order they joined, and falls back to its hash
// when the index is not one of them.
func steer(fd, base, n int) error {
	raw, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtCPUID},
		bpf.ALUOpConstant{Op: bpf.ALUOpMod, Val: uint32(n)},
		bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: uint32(base)},
		bpf.RetA{},
	})
	if err != nil {
		return err
	}
	prog := unix.SockFprog{Len: uint16(len(raw)), Filter: (*unix.SockFilter)(unsafe.Pointer(&raw[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &prog); err != nil {
		return fmt.Errorf("attaching the reuseport steering program: %w", err)
	}
	return nil
}

// dupSocket returns a duplicate of c's socket that no poller watches: held
// only to keep the socket open (see reusegroup.go).
func dupSocket(c *net.UDPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	return fd, derr
}

// connOn returns a connection of its own on the socket fd.
func connOn(fd int) (*net.UDPConn, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), "fast path socket")
	defer f.Close() // FilePacketConn has its own duplicate
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

func closeSocket(fd int) { unix.Close(fd) }
