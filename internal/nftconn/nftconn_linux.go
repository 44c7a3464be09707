// Package nftconn holds what runed's two nftables owners (the proxy's
// interception and network policy's filter) need alike from a netlink
// connection: room for large transactions, and element lists split so each
// message can encode them.
package nftconn

import (
	"errors"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// socketBuffer lets one transaction carry a whole large table (10,000
// services, or 10,000 CIDR peers, are a few MB of netlink messages).
const socketBuffer = 32 << 20

// Open opens a lasting netlink connection, in the network namespace netns
// when it is not 0 (tests and benchmarks program namespaces they create).
func Open(netns int) (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(forceBuffers)}
	if netns != 0 {
		opts = append(opts, nftables.WithNetNSFd(netns))
	}
	return nftables.New(opts...)
}

func forceBuffers(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = errors.Join(
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer),
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer))
	})
	return errors.Join(err, serr)
}

// chunk bounds the elements per message: an element list is one netlink
// attribute, whose 16-bit length overflows past about 1,100 interval
// elements (the kernel then rejects the batch) or cuts a longer plain list
// short silently. Chunks of one transaction still apply atomically.
const chunk = 512

// InChunks applies op (the connection's SetAddElements or SetDeleteElements)
// to elems in messages small enough to encode.
func InChunks(op func(*nftables.Set, []nftables.SetElement) error, s *nftables.Set, elems []nftables.SetElement) error {
	for len(elems) > 0 {
		n := min(len(elems), chunk)
		if err := op(s, elems[:n]); err != nil {
			return err
		}
		elems = elems[n:]
	}
	return nil
}
