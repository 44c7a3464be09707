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
	c := newCopier(dstRC, srcRC)
	var total int64
	splicing := false
	for {
		var read, written int64
		if splicing {
			read, written, err = c.spliceOnce()
		} else {
			read, written, err = c.copyOnce()
		}
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

// copier is one direction's state between the system calls of a message.
// Its callbacks for RawConn.Read and Write are bound once per direction:
// closures made per message were 3.4 % of the proxy's CPU under keep-alive
// load, all of it allocation.
type copier struct {
	dst, src syscall.RawConn
	buf      *[]byte // taken while a message moves
	p        *pipe   // likewise, when splicing
	data     []byte  // what is left to write of the buffer
	n        int64   // bytes read (or spliced into the pipe) for this message
	left     int64   // bytes of the pipe not yet spliced out
	serr     error   // the system call's error

	read, write, spliceIn, spliceOut func(fd uintptr) bool
}

func newCopier(dst, src syscall.RawConn) *copier {
	c := &copier{dst: dst, src: src}
	c.read, c.write = c.readFD, c.writeFD
	c.spliceIn, c.spliceOut = c.spliceInFD, c.spliceOutFD
	return c
}

// copyOnce reads what src has (waiting for something) and writes all of it
// to dst. The buffer is taken only once there is something to read.
func (c *copier) copyOnce() (read, written int64, err error) {
	c.n, c.serr = 0, nil
	err = c.src.Read(c.read)
	if err == nil {
		err = c.serr
	}
	if err != nil || c.n <= 0 {
		c.putBuf()
		return 0, 0, err
	}
	c.data = (*c.buf)[:c.n]
	err = c.dst.Write(c.write)
	if err == nil {
		err = c.serr
	}
	n := c.n
	written = n - int64(len(c.data))
	c.data = nil
	c.putBuf()
	return n, written, err
}

func (c *copier) readFD(fd uintptr) bool {
	if c.buf == nil {
		c.buf = bufs.Get().(*[]byte)
	}
	n, err := unix.Read(int(fd), *c.buf)
	if err == unix.EAGAIN {
		c.putBuf()
		return false
	}
	c.n, c.serr = int64(n), err
	return true
}

func (c *copier) writeFD(fd uintptr) bool {
	for len(c.data) > 0 {
		m, err := unix.Write(int(fd), c.data)
		if err == unix.EAGAIN {
			return false
		}
		if err != nil {
			c.serr = err
			return true
		}
		c.data = c.data[m:]
	}
	return true
}

func (c *copier) putBuf() {
	if c.buf != nil {
		bufs.Put(c.buf)
		c.buf = nil
	}
}

// spliceOnce moves what src has (waiting for something) to dst through a
// pooled pipe, taken only once there is something to move.
func (c *copier) spliceOnce() (read, written int64, err error) {
	c.n, c.serr = 0, nil
	err = c.src.Read(c.spliceIn)
	if err == nil {
		err = c.serr
	}
	if err != nil || c.n <= 0 { // n == 0: EOF; the pipe is empty either way
		c.putPipe()
		return 0, 0, err
	}
	n := c.n
	c.left = n
	err = c.dst.Write(c.spliceOut)
	if err == nil {
		err = c.serr
	}
	if err != nil {
		// The pipe may still hold data: drop it rather than pool it (its
		// cleanup closes the fds).
		c.p = nil
		return n, n - c.left, err
	}
	c.putPipe()
	return n, n, nil
}

func (c *copier) spliceInFD(fd uintptr) bool {
	if c.p == nil {
		if c.p, c.serr = getPipe(); c.serr != nil {
			return true
		}
	}
	n, err := unix.Splice(int(fd), nil, c.p.w, nil, pipeSize, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
	if err == unix.EAGAIN {
		c.putPipe()
		return false
	}
	c.n, c.serr = n, err
	return true
}

func (c *copier) spliceOutFD(fd uintptr) bool {
	for c.left > 0 {
		m, err := unix.Splice(c.p.r, nil, int(fd), nil, int(c.left), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		if err == unix.EAGAIN {
			return false
		}
		if err != nil {
			c.serr = err
			return true
		}
		c.left -= m
	}
	return true
}

func (c *copier) putPipe() {
	if c.p != nil {
		pipes.Put(c.p)
		c.p = nil
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
