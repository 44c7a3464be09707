package proxy

import (
	"net"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// relay moves the bytes of established TCP connections: one event loop per
// P (GOMAXPROCS), each with its own epoll set of connection sockets, which
// it reads and writes with raw system calls.
//
// Why not a goroutine per direction: under keep-alive load every request
// and every response parks one goroutine and wakes another, each wake-up
// going through the netpoller, the scheduler and often a futex. That was
// 12.0 µs of CPU per request against HAProxy's 8.5 µs, the difference all
// in Go's runtime (docs/benchmarks.md). Here a loop serves every socket
// epoll reports ready before it waits again: a request costs a read and a
// write each way and a share of one epoll_pwait, as in HAProxy. An idle
// connection costs its two sockets and a small struct, no goroutine stacks.
//
// A loop runs on a thread of its own pinned to a CPU of its own, and
// waits in the kernel as HAProxy's threads do: a raw epoll_pwait for up to
// a millisecond (it keeps its P, so the next events cost no scheduler
// round trip), then a blocking one the runtime sees (its P can be taken
// back). Parked in Go's netpoller instead, the loops left the machine idle
// 10–13 % of the time under keep-alive load, against HAProxy's 5–7 %, and
// measured 0.93× its requests/s; this way 1.01× (docs/benchmarks.md). So
// that loops busy or asleep in the raw wait never hold every P, the
// process gets one P more than it has loops (reserveP).
//
// A connection is handed over once it is established (accepted, admitted,
// dialed: see handleTCP); its sockets leave Go's netpoller then (dup and
// close of the net.TCPConn, which removes the original from Go's epoll set)
// and belong to one loop until they close.
type relay struct {
	workers []*relayWorker
	next    atomic.Uint32
}

func newRelay() *relay {
	loops := reserveP()
	cpus := allowedCPUs()
	rl := &relay{workers: make([]*relayWorker, loops)}
	for i := range rl.workers {
		rl.workers[i] = &relayWorker{epfd: -1, cpu: -1}
		if len(cpus) > 0 {
			rl.workers[i].cpu = cpus[i%len(cpus)]
		}
	}
	return rl
}

// reserveP returns how many loops a relay runs, GOMAXPROCS as the process
// started (one per CPU it may use), and raises GOMAXPROCS by one, once per
// process: a loop holds its P while it works and while it sleeps in the
// raw wait, and the rest of the process (DNS first) must not wait for one.
// Set explicitly, GOMAXPROCS no longer follows a container's CPU limit as
// it changes (Go 1.25): the process keeps the one it started with.
var reserveP = sync.OnceValue(func() int {
	n := runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(n + 1)
	return n
})

// allowedCPUs lists the CPUs the process may run on, for pinning the loops;
// nil if it cannot tell.
func allowedCPUs() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	var cpus []int
	for c := 0; c < len(set)*64 && len(cpus) < set.Count(); c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

// start relays client ⇄ up until both directions end, taking ownership of
// both connections. The route's active gauge (already counted) and the
// endpoint's active count (counted by dial) are released when it ends. An
// error means both were reset at once.
func (rl *relay) start(client, up *net.TCPConn, m *portMetrics, ep *endpoint) error {
	c := &relayConn{m: m, ep: ep, fd: [2]int{-1, -1}}
	var err error
	if c.fd[0], err = detach(client); err == nil {
		c.fd[1], err = detach(up)
	}
	if err == nil {
		w := rl.workers[int(rl.next.Add(1))%len(rl.workers)]
		err = w.add(c)
	}
	if err != nil {
		// Out of file descriptors or epoll watches: refuse the connection
		// with a reset rather than leave the client waiting.
		reset(client)
		reset(up)
		c.finish(true)
	}
	return err
}

// close lets each loop end once its last connection has: connections
// established before a Proxy closes are left to finish (a reload does not
// cut them).
func (rl *relay) close() {
	for _, w := range rl.workers {
		w.mu.Lock()
		w.closing = true
		if w.epfd >= 0 {
			unix.Write(w.wakefd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
		}
		w.mu.Unlock()
	}
}

// detach takes a socket out of Go's netpoller: a duplicate of its file
// descriptor (nonblocking, as the original) stays open; closing the
// original deregisters it from Go's epoll set without closing the socket.
func detach(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	c.Close()
	return fd, nil
}

// relayWorker is one event loop. Its loop runs while it has connections or
// its relay is open; a connection handed over after the loop ended starts
// a new one.
type relayWorker struct {
	cpu     int // the loop's thread runs on it; -1: anywhere
	mu      sync.Mutex
	epfd    int // -1 while no loop runs
	wakefd  int // an eventfd in the epoll set: close wakes the loop
	closing bool
	// slots holds the loop's connections; an epoll event names its slot and
	// the slot's generation, so an event can never reach a connection that
	// took over a freed slot.
	slots []*relayConn
	free  []int32
	gen   uint32
	live  int
}

// wakeSlot marks the wake eventfd's epoll events.
const wakeSlot = -1

func (w *relayWorker) add(c *relayConn) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.epfd < 0 {
		if err := w.open(); err != nil {
			return err
		}
	}
	if n := len(w.free); n > 0 {
		c.slot = w.free[n-1]
		w.free = w.free[:n-1]
	} else {
		c.slot = int32(len(w.slots))
		w.slots = append(w.slots, nil)
	}
	w.slots[c.slot] = c
	c.gen = w.nextGen()
	// Under the lock, so the loop cannot look the slot up before both
	// sockets are in the set; edge-triggered, both ways at once: no
	// epoll_ctl is needed again in the connection's life.
	for side, fd := range c.fd {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: c.slot, Pad: c.gen<<1 | int32(side)}
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			if side == 1 {
				unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, c.fd[0], nil)
			}
			w.slots[c.slot] = nil
			w.free = append(w.free, c.slot)
			return err
		}
	}
	w.live++
	return nil
}

// nextGen numbers the connections a slot holds, in 30 bits: the event's
// other word holds it shifted by one, beside the side.
func (w *relayWorker) nextGen() int32 {
	w.gen++
	return int32(w.gen & (1<<30 - 1))
}

func (w *relayWorker) open() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return err
	}
	// Edge-triggered: one wake-up is enough, and the counter is never read.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: wakeSlot}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return err
	}
	w.epfd, w.wakefd = epfd, wakefd
	go w.run(epfd)
	return nil
}

type readyEvent struct {
	c      *relayConn
	side   int
	events uint32
}

func (w *relayWorker) run(epfd int) {
	// Locked and never unlocked: the thread, pinned, ends with the loop
	// rather than go back to the runtime's pool.
	runtime.LockOSThread()
	if w.cpu >= 0 {
		var set unix.CPUSet
		set.Set(w.cpu)
		unix.SchedSetaffinity(0, &set) // the calling thread; if refused, it runs anywhere
	}
	events := make([]unix.EpollEvent, 128)
	// again holds the directions that stopped at their budget with data
	// perhaps left: no edge will come for it, so they go on next round,
	// after the events that arrived meanwhile.
	var ready, again []readyEvent
	buf := make([]byte, smallSize)
	var n int
	for {
		// Errors are EINTR only (the arguments are the loop's own): a
		// round with no events, and the loop waits again.
		switch {
		case len(again) > 0:
			n, _ = rawEpollWait(epfd, events, 0)
		default:
			if n, _ = rawEpollWait(epfd, events, rawWaitMS); n <= 0 {
				n, _ = epollWait(epfd, events)
			}
		}
		n = max(n, 0)
		// The slots are looked up under the lock (add may be growing
		// them), the sockets served outside it.
		w.mu.Lock()
		for _, ev := range events[:n] {
			if ev.Fd == wakeSlot {
				continue
			}
			c := w.slots[ev.Fd]
			if c == nil || c.gen != ev.Pad>>1 {
				continue
			}
			ready = append(ready, readyEvent{c, int(ev.Pad & 1), ev.Events})
		}
		w.mu.Unlock()
		ready = append(ready, again...)
		clear(again)
		again = again[:0]
		for _, e := range ready {
			if !e.c.done {
				e.c.handle(e.side, e.events, buf, &again)
			}
		}
		w.mu.Lock()
		for _, e := range ready {
			if e.c.done && w.slots[e.c.slot] == e.c {
				w.slots[e.c.slot] = nil
				w.free = append(w.free, e.c.slot)
				w.live--
			}
		}
		end := w.closing && w.live == 0
		if end {
			unix.Close(w.wakefd)
			unix.Close(epfd)
			w.epfd = -1
		}
		w.mu.Unlock()
		if end {
			return
		}
		clear(ready)
		ready = ready[:0]
	}
}

// relayConn is one proxied connection: fd[0] the client's socket, fd[1]
// the endpoint's; dir[i] moves fd[i] → fd[1-i]. Only its loop touches it.
type relayConn struct {
	fd   [2]int
	dir  [2]flow
	slot int32
	gen  int32
	done bool
	m    *portMetrics
	ep   *endpoint
}

// flow is one direction's state.
type flow struct {
	held     *[]byte // a pooled buffer with what the destination did not take yet
	data     []byte  // the part of *held left to write
	pipe     *pipe   // while splicing
	inPipe   int     // bytes in the pipe not yet spliced out
	splicing bool
	eof      bool  // the source has been read to its end
	bytes    int64 // written, not yet added to the metric
	moved    int64 // written in all
}

// pumpBudget is how much one direction moves before the loop serves the
// other connections' events: a bulk transfer between fast sockets would
// otherwise keep the loop to itself for as long as both keep up.
const pumpBudget = 2 * pipeSize

func (f *flow) blocked() bool { return len(f.data) > 0 || f.inPipe > 0 }

func (f *flow) wrote(n int) {
	f.bytes += int64(n)
	f.moved += int64(n)
}

// handle serves one epoll event of fd[side]: its readability feeds
// dir[side], its writability drains what dir[1-side] holds.
func (c *relayConn) handle(side int, events uint32, buf []byte, again *[]readyEvent) {
	// pump's direction d is fd[d]'s input: its continuation is an event
	// of fd[d]'s, with RDHUP to read on to the end rather than stop at a
	// short read.
	pump := func(d int, drain bool) {
		if c.pump(d, drain, buf) {
			*again = append(*again, readyEvent{c, d, unix.EPOLLIN | unix.EPOLLRDHUP})
		}
	}
	if events&unix.EPOLLERR != 0 {
		// A reset or a failed send (e.g. timed-out retransmissions):
		// what arrived before it is passed on, then the reset, as the
		// read that meets the error would.
		c.pump(side, true, buf) // no continuation: the reset ends it
		c.finish(true)
		return
	}
	if events&unix.EPOLLOUT != 0 && c.dir[1-side].blocked() {
		// Still blocked or not, the event's readability is served below:
		// an edge-triggered event comes once.
		if c.flush(1 - side) {
			pump(1-side, true)
		}
		if c.done {
			return
		}
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
		// A FIN already queued when the event was made is reported in
		// it and makes no later event: read on to the end then.
		// Otherwise a short read has emptied the socket, and whatever
		// arrives next brings an event of its own (edge-triggered).
		pump(side, events&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0)
	}
}

// pump moves what fd[d] has to fd[1-d] until fd[d] is empty (drain), or
// after the first read shorter than buf (otherwise), or until the
// destination stops taking it, or until it has moved pumpBudget; it
// reports the last case, where fd[d] may still have data.
func (c *relayConn) pump(d int, drain bool, buf []byte) (more bool) {
	f := &c.dir[d]
	start := f.moved
	for !c.done && !f.eof && !f.blocked() {
		if f.moved-start >= pumpBudget {
			return true
		}
		if f.splicing {
			if !c.spliceOnce(d) {
				return false
			}
			continue
		}
		n, err := rawRead(c.fd[d], buf)
		switch {
		case err == unix.EAGAIN:
			return false
		case err == unix.EINTR:
			continue
		case err != 0:
			c.finish(true)
			return false
		case n == 0:
			c.ended(d)
			return false
		}
		if !c.write(d, buf[:n]) {
			return false
		}
		// A read that fills the buffer is bulk: splice from now on, so
		// payload never enters user space, until a splice comes back
		// short. For a message of a few hundred bytes a splice costs
		// more than the copy it saves.
		if n == len(buf) {
			f.splicing = true
		} else if !drain {
			return false
		}
	}
	return false
}

// write sends data on fd[1-d], holding what the socket does not take; it
// reports whether all of it went.
func (c *relayConn) write(d int, data []byte) bool {
	rest, ok := c.send(d, data)
	if ok && len(rest) > 0 {
		f := &c.dir[d]
		f.held = bufs.Get().(*[]byte)
		f.data = (*f.held)[:copy(*f.held, rest)]
	}
	return ok && len(rest) == 0
}

// flush writes what dir[d] holds, on fd[1-d] turning writable; it reports
// whether nothing is held any more.
func (c *relayConn) flush(d int) bool {
	f := &c.dir[d]
	if f.inPipe > 0 {
		return c.spliceOut(d)
	}
	rest, ok := c.send(d, f.data)
	if !ok {
		return false
	}
	if f.data = rest; len(rest) > 0 {
		return false
	}
	bufs.Put(f.held)
	f.held = nil
	return true
}

// send writes data on fd[1-d] until all of it went or the socket is full,
// and returns what is left; false if the write failed and ended the
// connection.
func (c *relayConn) send(d int, data []byte) ([]byte, bool) {
	for len(data) > 0 {
		m, err := rawWrite(c.fd[1-d], data)
		switch {
		case err == unix.EAGAIN:
			return data, true
		case err == unix.EINTR:
			continue
		case err != 0:
			c.finish(true)
			return nil, false
		}
		data = data[m:]
		c.dir[d].wrote(m)
	}
	return nil, true
}

// spliceOnce moves one splice's worth fd[d] → pipe → fd[1-d]; it reports
// whether to go on (false: the source is empty or ended, or the
// destination full).
func (c *relayConn) spliceOnce(d int) bool {
	f := &c.dir[d]
	if f.pipe == nil {
		p, err := getPipe()
		if err != nil {
			c.finish(true)
			return false
		}
		f.pipe = p
	}
	n, err := rawSplice(c.fd[d], f.pipe.w, pipeSize)
	switch {
	case err == unix.EAGAIN:
		f.putPipe()
		return false
	case err == unix.EINTR:
		return true
	case err != 0:
		c.finish(true)
		return false
	case n == 0:
		f.putPipe()
		c.ended(d)
		return false
	}
	f.inPipe = int(n)
	if n < smallSize {
		f.splicing = false
	}
	return c.spliceOut(d)
}

// spliceOut empties dir[d]'s pipe into fd[1-d]; it reports whether the
// pipe is empty.
func (c *relayConn) spliceOut(d int) bool {
	f := &c.dir[d]
	for f.inPipe > 0 {
		m, err := rawSplice(f.pipe.r, c.fd[1-d], f.inPipe)
		switch {
		case err == unix.EAGAIN:
			return false
		case err == unix.EINTR:
			continue
		case err != 0:
			c.finish(true)
			return false
		}
		f.inPipe -= int(m)
		f.wrote(m)
	}
	if !f.splicing {
		f.putPipe()
	}
	return true
}

// putPipe pools the direction's pipe once it is empty.
func (f *flow) putPipe() {
	if f.pipe != nil && f.inPipe == 0 {
		pipes.Put(f.pipe)
		f.pipe = nil
	}
}

// ended passes on the end of fd[d]'s stream as a half-close of fd[1-d].
// The direction that ends last leaves that to the close that follows at
// once: both sockets have been read to their end by then, so the close
// sends a FIN, not a reset, and a shutdown call is saved.
func (c *relayConn) ended(d int) {
	f := &c.dir[d]
	f.eof = true
	c.count(d)
	if c.dir[1-d].eof {
		c.finish(false)
		return
	}
	// An error here (the peer already gone) shows as the next event's.
	unix.Shutdown(c.fd[1-d], unix.SHUT_WR)
}

func (c *relayConn) count(d int) {
	f := &c.dir[d]
	if f.bytes == 0 {
		return
	}
	if d == 0 {
		c.m.bytesTo.Add(float64(f.bytes))
	} else {
		c.m.bytesFrom.Add(float64(f.bytes))
	}
	f.bytes = 0
}

// finish closes both sockets, with a reset (abort) or after both ends'
// FINs, and releases what the connection holds.
func (c *relayConn) finish(abort bool) {
	if c.done {
		return
	}
	c.done = true
	for d := range c.fd {
		if c.fd[d] < 0 {
			continue
		}
		if abort {
			unix.SetsockoptLinger(c.fd[d], unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		}
		unix.Close(c.fd[d])
		f := &c.dir[d]
		if f.held != nil {
			bufs.Put(f.held)
			f.held, f.data = nil, nil
		}
		f.putPipe() // one still holding data is dropped: its cleanup closes it
		c.count(d)
	}
	c.m.active.Dec()
	c.ep.active.Add(-1)
}
