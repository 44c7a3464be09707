package rune

import (
	"slices"
	"sync"
)

// A reload starts the new instance's fast path before it stops the old
// one, so for a moment two fast paths have sockets in an address's
// SO_REUSEPORT group: CoreDNS's socket at index 0, the old one's 1..n, the
// new one's after them. The kernel numbers a group's sockets in the order
// they joined and, when one leaves, moves the last into its place. Steering
// the new fast path to its own indices while the old one still exists means
// the old sockets get no new packets, and closing them then loses none;
// once they are gone the new sockets sit at 1..n and are steered there.
// This is one process's bookkeeping of the kernel's group, so it lives
// beside the sockets, not in the node runtime.
var reuseGroups = struct {
	sync.Mutex
	byAddr map[string][]*fastPath // oldest first
}{byAddr: map[string][]*fastPath{}}

// joinGroup records fp's sockets in addr's group and steers the group to
// them.
func (fp *fastPath) joinGroup(addr string) error {
	reuseGroups.Lock()
	defer reuseGroups.Unlock()
	reuseGroups.byAddr[addr] = append(reuseGroups.byAddr[addr], fp)
	return fp.steerOwn(reuseGroups.byAddr[addr])
}

// leaveGroup forgets fp after its sockets closed and steers the newest fast
// path left to where its sockets are now.
func (fp *fastPath) leaveGroup(addr string) {
	reuseGroups.Lock()
	defer reuseGroups.Unlock()
	g := slices.DeleteFunc(reuseGroups.byAddr[addr], func(o *fastPath) bool { return o == fp })
	if len(g) == 0 {
		delete(reuseGroups.byAddr, addr)
		return
	}
	reuseGroups.byAddr[addr] = g
	if err := g[len(g)-1].steerOwn(g); err != nil {
		log.Warningf("fast path on %s: %v; it gets a share of the packets only", addr, err)
	}
}

// steerOwn points the group at fp's sockets: after CoreDNS's and those of
// the fast paths in g before fp.
func (fp *fastPath) steerOwn(g []*fastPath) error {
	base := 1
	for _, o := range g {
		if o == fp {
			break
		}
		base += len(o.conns)
	}
	return steer(fp.conns[0], base, len(fp.conns))
}
