package proxy

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The relay's system calls on nonblocking sockets and pipes, made raw:
// none of them can block (the raw epoll_pwait only for a bounded time), so
// the goroutine need not give up its P through them (syscall.Syscall marks
// the P as in a system call, and sysmon takes back Ps whose calls outlast
// its tick), and each call saves the runtime's entry and exit bookkeeping.

func rawRead(fd int, p []byte) (int, unix.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

func rawWrite(fd int, p []byte) (int, unix.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

func rawSplice(in, out, n int) (int, unix.Errno) {
	m, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
	return int(m), e
}

// rawWaitMS is how long a loop sleeps in a raw epoll_pwait, keeping its P,
// before it waits in one the runtime knows of.
const rawWaitMS = 1

// rawEpollWait returns the events ready within ms milliseconds (0: now).
func rawEpollWait(epfd int, events []unix.EpollEvent, ms int) (int, unix.Errno) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(ms), 0, 0)
	return int(n), e
}

// epollWait waits for events as a blocking system call: the runtime may
// give the loop's P to other goroutines meanwhile.
func epollWait(epfd int, events []unix.EpollEvent) (int, unix.Errno) {
	n, _, e := unix.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), ^uintptr(0), 0, 0)
	return int(n), e
}
