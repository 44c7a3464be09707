//go:build !linux

package proxy

import (
	"io"
	"net"
	"sync/atomic"
)

// relay, where there is no epoll, is a goroutine per direction.
type relay struct{}

func newRelay() *relay { return &relay{} }

func (*relay) close() {}

// start copies client ⇄ up until both directions end, in the calling
// goroutine.
func (*relay) start(client, up *net.TCPConn, m *portMetrics, ep *endpoint) error {
	defer func() {
		ep.active.Add(-1)
		m.active.Dec()
	}()
	pipeTCP(client, up, m)
	return nil
}

// pipeTCP copies both ways until both directions end. A clean EOF in one
// direction is passed on as a half-close (CloseWrite); an error (e.g. a
// reset) aborts both sides with a reset.
func pipeTCP(client, up *net.TCPConn, m *portMetrics) {
	done := make(chan struct{})
	var ended atomic.Int32
	go func() {
		defer close(done)
		n, err := io.Copy(up, client)
		m.bytesTo.Add(float64(n))
		halfClose(up, client, err, ended.Add(1) == 2)
	}()
	n, err := io.Copy(client, up)
	m.bytesFrom.Add(float64(n))
	halfClose(client, up, err, ended.Add(1) == 2)
	<-done
	client.Close()
	up.Close()
}

// halfClose ends one direction, src → dst. The direction that ends last
// leaves dst's FIN to the Close that follows at once: both sockets have
// read to EOF by then, so Close sends a FIN, not a reset, and a shutdown
// call per connection is saved.
func halfClose(dst, src *net.TCPConn, err error, last bool) {
	switch {
	case err != nil:
		reset(dst)
		reset(src)
	case !last:
		dst.CloseWrite()
	}
}
