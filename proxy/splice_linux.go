package proxy

import (
	"fmt"
	"net"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// copyTCP moves src → dst with splice(2), so payload never enters user
// space. Unlike io.Copy's splice path, which holds a pipe (two fds and its
// buffer) for the life of the copy, it takes a pipe from a shared pool only
// while data is moving: an idle connection costs its two sockets and
// nothing more, which is what lets a node hold tens of thousands of them.
func copyTCP(dst, src *net.TCPConn) (int64, error) {
	srcRC, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	dstRC, err := dst.SyscallConn()
	if err != nil {
		return 0, err
	}
	var total int64
	for {
		var p *pipe
		var n int64
		var serr error
		// Read parks the goroutine in the netpoller until src is readable;
		// the pipe is taken only once there is something to move.
		err := srcRC.Read(func(fd uintptr) bool {
			if p, serr = getPipe(); serr != nil {
				return true
			}
			n, serr = unix.Splice(int(fd), nil, p.w, nil, pipeSize, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			if serr == unix.EAGAIN {
				pipes.Put(p)
				return false
			}
			return true
		})
		if err == nil {
			err = serr
		}
		if err != nil || n == 0 { // n == 0: EOF; the pipe is empty either way
			if p != nil {
				pipes.Put(p)
			}
			return total, err
		}
		left := n
		err = dstRC.Write(func(fd uintptr) bool {
			for left > 0 {
				m, werr := unix.Splice(p.r, nil, int(fd), nil, int(left), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
				if werr == unix.EAGAIN {
					return false
				}
				if werr != nil {
					serr = werr
					return true
				}
				left -= m
			}
			return true
		})
		if err == nil {
			err = serr
		}
		total += n - left
		if err != nil {
			// The pipe may still hold data: drop it rather than pool it (its
			// cleanup closes the fds).
			return total, err
		}
		pipes.Put(p)
	}
}

// pipeSize is how much one splice moves at most; larger pipes mean fewer
// system calls per byte on bulk transfers.
const pipeSize = 1 << 20

type pipe struct{ r, w int }

// pipes holds empty pipes. The GC may drop pooled pipes at will; their
// cleanup closes the fds.
var pipes sync.Pool

func getPipe() (*pipe, error) {
	if p, ok := pipes.Get().(*pipe); ok {
		return p, nil
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, fmt.Errorf("proxy: create a pipe for splice: %w", err)
	}
	// Best effort: the default 64 KiB works too, just with more calls.
	unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, pipeSize)
	p := &pipe{r: fds[0], w: fds[1]}
	runtime.AddCleanup(p, func(fds [2]int) { unix.Close(fds[0]); unix.Close(fds[1]) }, fds)
	return p, nil
}
