package raft

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"
)

// redialEvery is how often a refused Raft dial is tried again.
const redialEvery = 50 * time.Millisecond

// dialRaft dials a peer for hashicorp/raft and, while the peer refuses
// (its host is up, runed is not: a restart), keeps trying until ctx ends
// (the NetworkTransport's timeout).
// hashicorp/raft backs its replication to a peer off exponentially per
// failed RPC, up to 10 s; refused dials fail in microseconds, so a
// follower down for a few seconds would otherwise wait up to 10 s after it
// is back before the leader tries again. Retrying here costs one failure
// per timeout (10 s) instead, and the follower is reached within redialEvery of
// listening again.
func (t *tlsTransport) dialRaft(ctx context.Context, addr string) (net.Conn, error) {
	for {
		conn, err := t.dial(ctx, addr, streamRaft)
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
			return conn, err
		}
		select {
		case <-time.After(redialEvery):
		case <-ctx.Done():
			return nil, err
		case <-t.stopDials:
			return nil, err
		}
	}
}

// stopDialing ends every retrying dial, and later ones retry no more:
// Raft's shutdown waits for its replication goroutines, which may be
// waiting in one. Log.Close calls it before shutting Raft down.
func (t *tlsTransport) stopDialing() { t.stopDialsOnce.Do(func() { close(t.stopDials) }) }
