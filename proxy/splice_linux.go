package proxy

import (
	"fmt"
	"net"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// copyTCP moves src → dst. Small reads (a request, a response) go through
// a pooled buffer with read(2) and write(2); a read that fills the buffer
// switches the copy to splice(2), so bulk payload never enters user space,
// until a splice comes back short. For a message of a few hundred bytes a
// splice costs more than the copy it saves (the socket's bytes are put in
// a page of the pipe, and the send builds an skb from that page). Neither
// buffer nor pipe is held while the connection idles: an idle connection
// costs its two sockets and nothing more, which is what lets a node hold
// tens of thousands of them (io.Copy's splice path holds a pipe, two fds
// and its buffer, for the life of the copy).
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
	splicing := false
	for {
		move := copyOnce
		if splicing {
			move = spliceOnce
		}
		read, written, err := move(dstRC, srcRC)
		total += written
		if err != nil || read == 0 { // read == 0: EOF
			return total, err
		}
		splicing = read >= smallSize
	}
}

// smallSize is the buffer of copyOnce: reads shorter than it stay in user
// space.
const smallSize = 16 << 10

var bufs = sync.Pool{New: func() any { b := make([]byte, smallSize); return &b }}

// copyOnce reads what src has (waiting for something) and writes all of it
// to dst. The buffer is taken only once there is something to read.
func copyOnce(dstRC, srcRC syscall.RawConn) (read, written int64, err error) {
	var b *[]byte
	var n int
	var serr error
	err = srcRC.Read(func(fd uintptr) bool {
		b = bufs.Get().(*[]byte)
		n, serr = unix.Read(int(fd), *b)
		if serr == unix.EAGAIN {
			bufs.Put(b)
			return false
		}
		return true
	})
	if err == nil {
		err = serr
	}
	if err != nil || n <= 0 {
		if b != nil {
			bufs.Put(b)
		}
		return 0, 0, err
	}
	data := (*b)[:n]
	err = dstRC.Write(func(fd uintptr) bool {
		for len(data) > 0 {
			m, werr := unix.Write(int(fd), data)
			if werr == unix.EAGAIN {
				return false
			}
			if werr != nil {
				serr = werr
				return true
			}
			data = data[m:]
		}
		return true
	})
	if err == nil {
		err = serr
	}
	bufs.Put(b)
	return int64(n), int64(n - len(data)), err
}

// spliceOnce moves what src has (waiting for something) to dst through a
// pooled pipe, taken only once there is something to move.
func spliceOnce(dstRC, srcRC syscall.RawConn) (read, written int64, err error) {
	var p *pipe
	var n int64
	var serr error
	err = srcRC.Read(func(fd uintptr) bool {
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
	if err != nil || n <= 0 { // n == 0: EOF; the pipe is empty either way
		if p != nil {
			pipes.Put(p)
		}
		return 0, 0, err
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
	if err != nil {
		// The pipe may still hold data: drop it rather than pool it (its
		// cleanup closes the fds).
		return n, n - left, err
	}
	pipes.Put(p)
	return n, n, nil
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
