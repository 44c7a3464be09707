package proxy

import (
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// smallSize is the relay's read buffer: reads shorter than it stay in
// user space, a read that fills it turns its direction to splice.
const smallSize = 16 << 10

// bufs holds buffers for what a destination socket did not take at once:
// a connection holds one only while its peer is slow.
var bufs = sync.Pool{New: func() any { b := make([]byte, smallSize); return &b }}

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
