package rune

import (
	"net"
	"slices"
	"sync"
	"time"

	"github.com/coredns/coredns/core/dnsserver"
)

// A fast path's sockets belong to its address, not to the fast path: a
// reload's new instance reads the sockets its predecessor read, as
// CoreDNS's own server keeps its socket across a reload (caddy hands the
// listener over). Each fast path reads duplicates of them, so stopping one
// closes no socket.
//
// Why not sockets of its own per fast path: a socket leaving an
// SO_REUSEPORT group renumbers the group (the kernel moves the last socket
// into the leaver's place), so while the old sockets closed one by one the
// steering program's indices could name a socket about to close, and a
// query arriving then was lost.
//
// A reload runs the new instance's startup (takeOver) before it stops the
// old instance, and the new fast path starts only when its server begins
// serving, which can be after the old instance has shut down (its runegate
// closed: its answers would be SERVFAIL). So at the new instance's startup
// the old fast path stops reading; queries queue in the sockets and the
// new fast path answers them. If the new instance will not run a fast path
// on the address, the packets go back to CoreDNS's socket (the new
// instance's server reads it) and the old fast path answers what its
// sockets hold before it stops reading.
//
// This is one process's bookkeeping of the kernel's group, so it lives
// beside the sockets, not in the node runtime.
type reuseGroup struct {
	fds   []int // the group's sockets after CoreDNS's, held open here
	users []*fastPath
	// successor: a starting instance's fast path will take the sockets
	// over; linger bounds the wait once no user is left.
	successor bool
	linger    *time.Timer
}

var reuseGroups = struct {
	sync.Mutex
	byAddr map[string]*reuseGroup
}{byAddr: map[string]*reuseGroup{}}

const (
	// drainTime is how long a fast path handing its address back to
	// CoreDNS's socket goes on reading what its sockets hold.
	drainTime = 20 * time.Millisecond
	// lingerTime bounds how long sockets wait, unread, for a successor
	// (which normally comes within milliseconds).
	lingerTime = 5 * time.Second
)

// listenAddrs are the addresses of the servers dc's block will have, as
// dnsserver names them.
func listenAddrs(dc *dnsserver.Config) []string {
	var addrs []string
	for _, h := range dc.ListenHosts {
		if a, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(h, dc.Port)); err == nil {
			addrs = append(addrs, a.String())
		}
	}
	return addrs
}

// takeOver runs at the startup of the instance whose block dc is, before
// a reload stops the instance before it: the fast path sockets on the
// block's addresses wait for this instance's fast path if it will run one
// (fast, and the block allows it), else they hand the address back to
// CoreDNS's socket.
func takeOver(dc *dnsserver.Config, fast bool) {
	fast = fast && blockIneligible(dc) == ""
	reuseGroups.Lock()
	defer reuseGroups.Unlock()
	for _, addr := range listenAddrs(dc) {
		g := reuseGroups.byAddr[addr]
		if g == nil {
			continue
		}
		if fast {
			g.successor = true
			for _, u := range g.users {
				u.pause(time.Time{})
			}
			continue
		}
		g.steerBack(addr)
		for _, u := range g.users {
			u.pause(time.Now().Add(drainTime))
		}
	}
}

// restartFailed undoes takeOver for r's fast paths: the instance they
// belong to goes on serving.
func (r *Rune) restartFailed() {
	r.fastMu.Lock()
	defer r.fastMu.Unlock()
	reuseGroups.Lock()
	defer reuseGroups.Unlock()
	for _, fp := range r.fast {
		g := reuseGroups.byAddr[fp.addr]
		g.successor = false
		g.steerHere(fp.addr)
		fp.resume()
	}
}

// declined tells addr's sockets that the fast path expected on it will not
// run.
func declined(addr string) {
	reuseGroups.Lock()
	defer reuseGroups.Unlock()
	if g := reuseGroups.byAddr[addr]; g != nil && g.successor {
		g.successor = false
		if len(g.users) == 0 {
			g.closeLocked(addr)
		} else {
			g.steerBack(addr)
		}
	}
}

// joinGroup gives fp connections on addr's fast path sockets, opening n of
// them and steering the address's packets to them if no fast path holds
// them yet.
func (fp *fastPath) joinGroup(addr string, n int) error {
	reuseGroups.Lock()
	defer reuseGroups.Unlock()
	g := reuseGroups.byAddr[addr]
	if g == nil {
		var err error
		if g, err = openGroup(addr, n); err != nil {
			return err
		}
		reuseGroups.byAddr[addr] = g
	} else {
		// Another block on the address may have handed it back.
		g.steerHere(addr)
	}
	for _, fd := range g.fds {
		c, err := connOn(fd)
		if err != nil {
			fp.closeConns()
			fp.conns = nil
			if len(g.users) == 0 {
				g.closeLocked(addr)
			}
			return err
		}
		fp.conns = append(fp.conns, c)
	}
	fp.addr = addr
	g.users = append(g.users, fp)
	g.successor = false
	if g.linger != nil {
		g.linger.Stop()
		g.linger = nil
	}
	return nil
}

// openGroup opens n sockets on addr in the SO_REUSEPORT group of
// CoreDNS's socket, which is at index 0, and steers every packet to them.
func openGroup(addr string, n int) (*reuseGroup, error) {
	g := &reuseGroup{}
	for range n {
		c, err := listenReusePort(addr)
		if err != nil {
			g.close()
			return nil, err
		}
		fd, err := dupSocket(c)
		c.Close()
		if err != nil {
			g.close()
			return nil, err
		}
		g.fds = append(g.fds, fd)
	}
	g.steerHere(addr)
	return g, nil
}

// steerHere hands every packet of addr to the group's sockets.
func (g *reuseGroup) steerHere(addr string) {
	if err := steer(g.fds[0], 1, len(g.fds)); err != nil {
		log.Warningf("fast path on %s: %v; it gets a share of the packets only", addr, err)
	}
}

// steerBack hands addr's packets to CoreDNS's socket, which stays in place
// as the sockets after it leave the group.
func (g *reuseGroup) steerBack(addr string) {
	if err := steer(g.fds[0], 0, 1); err != nil {
		log.Warningf("fast path on %s: %v; queries arriving as it stops may be lost", addr, err)
	}
}

func (g *reuseGroup) close() {
	for _, fd := range g.fds {
		closeSocket(fd)
	}
}

// closeLocked steers addr's packets back to CoreDNS's socket and closes
// the sockets.
func (g *reuseGroup) closeLocked(addr string) {
	g.steerBack(addr)
	g.release(addr)
}

// release closes the sockets and forgets the group.
func (g *reuseGroup) release(addr string) {
	if g.linger != nil {
		g.linger.Stop()
	}
	g.close()
	delete(reuseGroups.byAddr, addr)
}

// stop stops fp. With another user or a successor the sockets stay. The
// last user closes them, holding the lock until then so that no fast path
// opens sockets on the address while these are still in its group.
func (fp *fastPath) stop() {
	reuseGroups.Lock()
	g := reuseGroups.byAddr[fp.addr]
	g.users = slices.DeleteFunc(g.users, func(u *fastPath) bool { return u == fp })
	fp.pause(time.Time{})
	if len(g.users) > 0 || g.successor {
		if len(g.users) == 0 {
			g.linger = time.AfterFunc(lingerTime, func() { g.expire(fp.addr) })
		}
		reuseGroups.Unlock()
		fp.finish()
		return
	}
	defer reuseGroups.Unlock()
	g.steerBack(fp.addr)
	fp.finish()
	g.release(fp.addr)
}

// expire closes sockets whose successor did not come.
func (g *reuseGroup) expire(addr string) {
	reuseGroups.Lock()
	defer reuseGroups.Unlock()
	if reuseGroups.byAddr[addr] != g || len(g.users) > 0 {
		return
	}
	log.Warningf("fast path on %s: no fast path took its sockets over within %v of a reload; closing them", addr, lingerTime)
	g.closeLocked(addr)
}
